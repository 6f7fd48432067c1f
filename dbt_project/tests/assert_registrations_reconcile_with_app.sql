-- Mart totals reconcile with the app tables: every registration once in
-- fct_registrations, per event and channel in the fill report, and in its member's
-- count in dim_members.
{{ config(meta={'dagster': {'ref': {'name': 'fct_registrations'}}}) }}
with app as (
    select event_id, platform as channel, count(*) as n
    from {{ source('app', 'registrations') }} group by 1, 2
),
fct as (
    select event_id, channel, count(*) as n from {{ ref('fct_registrations') }} group by 1, 2
),
fill as (
    select event_id, channel, sum(count_registrations) as n
    from {{ ref('rpt_fill_by_channel') }} group by 1, 2
),
compared as (
    select coalesce(a.event_id, f.event_id) as event_id, coalesce(a.channel, f.channel) as channel,
           coalesce(a.n, 0) as app_n, coalesce(f.n, 0) as fct_n, coalesce(r.n, 0) as fill_n
    from app a
    full join fct f on f.event_id = a.event_id and f.channel = a.channel
    left join fill r on r.event_id = coalesce(a.event_id, f.event_id)
                    and r.channel = coalesce(a.channel, f.channel)
)
select 'per event and channel' as what, event_id::text, channel, app_n, fct_n, fill_n
from compared
where app_n <> fct_n or app_n <> fill_n
union all
select 'members total', null, null,
       (select count(*) from {{ source('app', 'registrations') }}),
       (select coalesce(sum(count_registrations), 0) from {{ ref('dim_members') }}),
       null
where (select count(*) from {{ source('app', 'registrations') }})
   <> (select coalesce(sum(count_registrations), 0) from {{ ref('dim_members') }})
