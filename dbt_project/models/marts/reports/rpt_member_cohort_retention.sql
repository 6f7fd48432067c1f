-- Cohorts by the month a member was first seen: how many of them registered again in
-- each later month (month 0 = the first month).
with activity as (
    select distinct r.member_id, date_trunc('month', r.registration_first_seen_at) as active_month
    from {{ ref('fct_registrations') }} r
),
cohorts as (
    select member_id, date_trunc('month', first_seen_at) as cohort_month
    from {{ ref('dim_members') }}
),
sizes as (
    select cohort_month, count(*) as cohort_size from cohorts group by cohort_month
)
select
    c.cohort_month,
    ((extract(year from a.active_month) - extract(year from c.cohort_month)) * 12
      + extract(month from a.active_month) - extract(month from c.cohort_month))::int as months_since_first,
    s.cohort_size,
    count(distinct a.member_id) as count_active_members,
    round(100.0 * count(distinct a.member_id) / s.cohort_size, 1) as pct_retained
from cohorts c
join activity a on a.member_id = c.member_id
join sizes s on s.cohort_month = c.cohort_month
group by c.cohort_month, months_since_first, s.cohort_size
