-- How each event filled, per channel: registrations, seats taken (approved, attended,
-- no-show), waitlist and cancellations, against the channel's own quota and the room.
with regs as (
    select event_id, channel,
        count(*) as count_registrations,
        count(*) filter (where is_approved) as seats_taken,
        count(*) filter (where registration_status = 'pending') as count_pending,
        count(*) filter (where registration_status = 'waitlist') as count_waitlist,
        count(*) filter (where is_cancelled) as count_cancelled,
        count(*) filter (where is_checked_in) as count_checked_in
    from {{ ref('fct_registrations') }}
    group by event_id, channel
),
channels as (
    select event_id, platform as channel, allocated_seats
    from {{ ref('stg_app__event_channels') }}
),
grid as (
    select event_id, channel from regs
    union
    select event_id, channel from channels
)
select
    e.event_id,
    e.event_slug,
    e.starts_at,
    g.channel,
    e.total_capacity,
    c.allocated_seats,
    coalesce(r.count_registrations, 0) as count_registrations,
    coalesce(r.seats_taken, 0) as seats_taken,
    coalesce(r.count_pending, 0) as count_pending,
    coalesce(r.count_waitlist, 0) as count_waitlist,
    coalesce(r.count_cancelled, 0) as count_cancelled,
    coalesce(r.count_checked_in, 0) as count_checked_in,
    round(100.0 * coalesce(r.seats_taken, 0) / nullif(e.total_capacity, 0), 1) as pct_of_room,
    round(100.0 * coalesce(r.seats_taken, 0) / nullif(c.allocated_seats, 0), 1) as pct_of_quota
from grid g
join {{ ref('dim_events') }} e on e.event_id = g.event_id
left join regs r on r.event_id = g.event_id and r.channel = g.channel
left join channels c on c.event_id = g.event_id and c.channel = g.channel
