-- Each record with its member id: md5 of its component's label (the earliest record).
select
    record_id,
    md5(label) as member_id,
    event_id,
    platform,
    platform_registration_id,
    first_seen_at,
    email_key,
    phone_key,
    account_key,
    label = own_label as is_founding_record,
    label_changed_at
from {{ ref('int_identity__record_members') }}
