-- One row per Meetup RSVP, from the RSVP node the pull stored (app.registrations.raw of
-- platform 'meetup'). Meetup exposes no e-mail or phone: its member id is the only key.
select
    id as registration_id,
    event_id,
    platform_event_id as meetup_event_id,
    platform_registration_id as rsvp_id,
    raw ->> 'status' as rsvp_status,
    nullif(raw ->> 'guestsCount', '')::int as count_guests,
    coalesce((raw ->> 'isHost')::boolean, false) as is_host,
    raw -> 'member' ->> 'id' as meetup_member_id,
    raw -> 'member' ->> 'name' as member_name,
    nullif(raw ->> 'updated', '')::timestamptz as rsvp_updated_at,
    created_at,
    updated_at
from {{ source('app', 'registrations') }}
where platform = 'meetup'
