-- Money reconciles with the app tables: every recorded payment (app.payments, kind
-- payment) is in fct_orders exactly once, every native order once, and the revenue
-- report's gross equals the paid orders' amounts.
{{ config(meta={'dagster': {'ref': {'name': 'fct_orders'}}}) }}
with payments as (
    select count(*) as n from {{ source('app', 'payments') }} where kind = 'payment'
),
in_orders as (
    select count(distinct payment_id) as n, count(payment_id) as rows_n
    from {{ ref('fct_orders') }} where payment_id is not null
),
orders as (
    select count(*) as n from {{ source('app', 'orders') }}
),
native as (
    select count(*) as n from {{ ref('fct_orders') }} where order_source = 'native'
),
revenue as (
    select coalesce(sum(gross_minor), 0) as gross from {{ ref('rpt_revenue_per_event') }}
),
paid as (
    select coalesce(sum(amount_minor), 0) as gross
    from {{ ref('fct_orders') }} where is_paid and event_id is not null
)
select 'payments' as what, p.n as app_n, i.n as mart_n from payments p, in_orders i
where p.n <> i.n or i.n <> i.rows_n
union all
select 'native orders', o.n, n.n from orders o, native n where o.n <> n.n
union all
select 'revenue gross', p.gross, r.gross from paid p, revenue r where p.gross <> r.gross
