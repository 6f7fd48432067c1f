-- One row per event: schedule, capacity, price, and on which channels it is published.
with channels as (
    select
        event_id,
        array_agg(platform order by platform) filter (where channel_status in ('published', 'closed'))
            as published_channels,
        sum(allocated_seats) as allocated_seats
    from {{ ref('stg_app__event_channels') }}
    group by event_id
)
select
    e.event_id,
    e.event_slug,
    e.event_title,
    e.starts_at,
    e.ends_at,
    e.event_timezone,
    e.is_online,
    e.total_capacity,
    e.total_capacity - coalesce(c.allocated_seats, 0) as shared_seats,
    e.price_minor,
    e.currency,
    e.is_free,
    e.event_status,
    e.is_approval_required,
    e.overbooking_policy,
    coalesce(c.published_channels, '{}') as published_channels,
    e.created_at
from {{ ref('stg_app__events') }} e
left join channels c on c.event_id = e.event_id
