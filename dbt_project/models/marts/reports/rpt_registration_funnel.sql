-- Per event and channel: registered -> approved -> paid -> checked in. For a free event
-- "paid" counts the approved (nothing to pay).
select
    r.event_id,
    e.event_slug,
    r.channel,
    count(*) as count_registered,
    count(*) filter (where r.is_approved) as count_approved,
    count(*) filter (where r.is_paid or (e.is_free and r.is_approved)) as count_paid,
    count(*) filter (where r.is_checked_in) as count_checked_in,
    round(100.0 * count(*) filter (where r.is_approved) / nullif(count(*), 0), 1) as pct_approved,
    round(100.0 * count(*) filter (where r.is_checked_in)
          / nullif(count(*) filter (where r.is_approved), 0), 1) as pct_checked_in_of_approved
from {{ ref('fct_registrations') }} r
join {{ ref('dim_events') }} e on e.event_id = r.event_id
group by r.event_id, e.event_slug, r.channel
