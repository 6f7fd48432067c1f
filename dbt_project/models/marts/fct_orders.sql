-- One row per order, whoever took the money:
--   native:   a checkout on our pages (app.orders), paid through Stripe;
--   payment:  a payment recorded from Stripe or a parsed e-mail that is no native order;
--   platform: a paid platform registration whose money the platform collected and for
--             which no payment of ours exists (Eventbrite, Luma, Meetup).
-- match_method says how money and registration were tied together.
with payments as (
    select * from {{ ref('int_payments__matches') }} where payment_kind = 'payment'
),
refunds as (
    select provider, provider_payment_id, sum(amount_minor) as refunded_minor
    from {{ ref('stg_app__payments') }}
    where payment_kind = 'refund'
    group by provider, provider_payment_id
),
native as (
    select
        'native:' || o.order_no as order_key,
        'native' as order_source,
        o.order_no,
        o.event_id,
        o.registration_id,
        p.payment_id,
        case when o.amount_minor > 0 then 'stripe' else 'none' end as provider,
        o.amount_minor,
        o.currency,
        o.order_status,
        case
            when p.payment_id is not null then 'stripe_session'
            when o.order_status in ('paid', 'confirmed') and o.amount_minor = 0 then 'free'
            when o.order_status in ('paid', 'confirmed') then 'stripe_session'
            else 'not_paid'
        end as match_method,
        coalesce(r.refunded_minor, 0) as refunded_minor,
        o.created_at as ordered_at
    from {{ ref('stg_app__orders') }} o
    left join payments p
        on p.provider = 'stripe' and p.provider_payment_id = o.stripe_payment_intent
    left join refunds r
        on r.provider = 'stripe' and r.provider_payment_id = o.stripe_payment_intent
),
recorded as (
    select
        'payment:' || p.payment_id as order_key,
        'payment' as order_source,
        null::text as order_no,
        p.event_id,
        p.registration_id,
        p.payment_id,
        p.provider,
        p.amount_minor,
        p.currency,
        p.payment_status as order_status,
        p.match_method,
        coalesce(r.refunded_minor, 0) as refunded_minor,
        coalesce(p.paid_at, p.created_at) as ordered_at
    from payments p
    left join refunds r
        on r.provider = p.provider and r.provider_payment_id = p.provider_payment_id
    where not exists (
        select 1 from {{ ref('stg_app__orders') }} o
        where p.provider = 'stripe' and o.stripe_payment_intent = p.provider_payment_id
    )
),
platform as (
    select
        'platform:' || g.registration_id as order_key,
        'platform' as order_source,
        g.order_no,
        g.event_id,
        g.registration_id,
        null::bigint as payment_id,
        g.platform as provider,
        g.amount_minor,
        g.currency,
        g.payment_status as order_status,
        'platform' as match_method,
        case when g.payment_status = 'refunded' then g.amount_minor else 0 end as refunded_minor,
        coalesce(g.registered_at, g.created_at) as ordered_at
    from {{ ref('stg_app__registrations') }} g
    where g.platform <> 'native'
      and g.amount_minor > 0
      and g.payment_status in ('paid', 'refunded')
      and not exists (select 1 from payments p where p.registration_id = g.registration_id)
)
select
    order_key,
    order_source,
    order_no,
    event_id,
    registration_id,
    payment_id,
    provider,
    amount_minor,
    currency,
    order_status,
    order_status in ('paid', 'confirmed', 'refunded') as is_paid,
    match_method,
    refunded_minor,
    amount_minor - refunded_minor as net_minor,
    ordered_at
from native
union all
select order_key, order_source, order_no, event_id, registration_id, payment_id, provider,
       amount_minor, currency, order_status, order_status in ('paid', 'confirmed', 'refunded'),
       match_method, refunded_minor, amount_minor - refunded_minor, ordered_at
from recorded
union all
select order_key, order_source, order_no, event_id, registration_id, payment_id, provider,
       amount_minor, currency, order_status, order_status in ('paid', 'confirmed', 'refunded'),
       match_method, refunded_minor, amount_minor - refunded_minor, ordered_at
from platform
