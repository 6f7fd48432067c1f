-- The records identity resolution works on: one per registration, with its keys in the
-- hub.members rules (identity e-mail, E.164 phone) plus the platform account, and the
-- label that orders it among its component (earliest first).
with registrations as (
    select * from {{ ref('stg_app__registrations') }}
)
select
    registration_id as record_id,
    event_id,
    platform,
    platform_registration_id,
    coalesce(registered_at, created_at) as first_seen_at,
    {{ identity_email('email') }} as email_key,
    phone_e164 as phone_key,
    {{ account_key('platform', 'platform_json') }} as account_key,
    {{ record_label('coalesce(registered_at, created_at)', 'platform', 'platform_registration_id') }} as own_label,
    updated_at as source_updated_at
from registrations
