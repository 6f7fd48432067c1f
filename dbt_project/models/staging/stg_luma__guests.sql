-- One row per Luma guest, from the guest JSON the pull or the webhook re-read stored
-- (app.registrations.raw of platform 'luma').
select
    id as registration_id,
    event_id,
    platform_event_id as luma_event_id,
    platform_registration_id as guest_id,
    raw ->> 'user_api_id' as luma_user_id,
    raw ->> 'approval_status' as approval_status,
    nullif(raw ->> 'checked_in_at', '')::timestamptz as checked_in_at,
    (select coalesce(sum(nullif(t ->> 'amount', '')::bigint), 0)
       from jsonb_array_elements(case when jsonb_typeof(raw -> 'event_tickets') = 'array'
                                      then raw -> 'event_tickets' else '[]'::jsonb end) t
    ) as ticket_amount_minor,
    nullif(raw ->> 'registered_at', '')::timestamptz as guest_registered_at,
    nullif(raw ->> 'updated_at', '')::timestamptz as guest_updated_at,
    created_at,
    updated_at
from {{ source('app', 'registrations') }}
where platform = 'luma'
