-- One row per event and platform (app.event_channels): allocation and publish state.
select
    id as event_channel_id,
    event_id,
    platform,
    allocation as allocated_seats,
    platform_event_id,
    url as platform_url,
    status as channel_status,
    published_version,
    attempts as count_attempts,
    last_error,
    synced_at,
    created_at
from {{ source('app', 'event_channels') }}
