-- Money per event and currency: gross, refunded and net of paid orders (fct_orders),
-- split by who collected it.
select
    o.event_id,
    e.event_slug,
    o.currency,
    count(*) filter (where o.is_paid) as count_paid_orders,
    coalesce(sum(o.amount_minor) filter (where o.is_paid), 0) as gross_minor,
    coalesce(sum(o.refunded_minor) filter (where o.is_paid), 0) as refunded_minor,
    coalesce(sum(o.net_minor) filter (where o.is_paid), 0) as net_minor,
    coalesce(sum(o.net_minor) filter (where o.is_paid and o.order_source = 'native'), 0) as native_net_minor,
    coalesce(sum(o.net_minor) filter (where o.is_paid and o.order_source = 'payment'), 0) as matched_payments_net_minor,
    coalesce(sum(o.net_minor) filter (where o.is_paid and o.order_source = 'platform'), 0) as platform_net_minor
from {{ ref('fct_orders') }} o
left join {{ ref('dim_events') }} e on e.event_id = o.event_id
where o.event_id is not null
group by o.event_id, e.event_slug, o.currency
