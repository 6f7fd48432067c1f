-- One row per Eventbrite attendee, from the attendee JSON the pull or the webhook re-read
-- stored (app.registrations.raw of platform 'eventbrite').
select
    id as registration_id,
    event_id,
    platform_event_id as eventbrite_event_id,
    platform_registration_id as attendee_id,
    raw ->> 'order_id' as order_id,
    raw ->> 'ticket_class_id' as ticket_class_id,
    raw ->> 'status' as attendee_status,
    coalesce((raw ->> 'checked_in')::boolean, false) as is_checked_in,
    coalesce((raw ->> 'cancelled')::boolean, false) as is_cancelled,
    coalesce((raw ->> 'refunded')::boolean, false) as is_refunded,
    coalesce(nullif(raw -> 'costs' -> 'gross' ->> 'value', '')::bigint, 0) as gross_minor,
    upper(raw -> 'costs' -> 'gross' ->> 'currency') as currency,
    raw -> 'profile' ->> 'email' as profile_email,
    raw -> 'profile' ->> 'cell_phone' as profile_cell_phone,
    nullif(raw ->> 'created', '')::timestamptz as attendee_created_at,
    nullif(raw ->> 'changed', '')::timestamptz as attendee_changed_at,
    created_at,
    updated_at
from {{ source('app', 'registrations') }}
where platform = 'eventbrite'
