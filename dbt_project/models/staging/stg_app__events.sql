-- One row per event (app.events), renamed and typed.
select
    id as event_id,
    slug as event_slug,
    title as event_title,
    starts_at,
    ends_at,
    timezone as event_timezone,
    venue_name,
    online_url is not null as is_online,
    total_capacity,
    price_minor,
    currency,
    price_minor = 0 as is_free,
    status as event_status,
    version as event_version,
    native_theme,
    overbooking_policy,
    approval_required as is_approval_required,
    created_at,
    updated_at
from {{ source('app', 'events') }}
