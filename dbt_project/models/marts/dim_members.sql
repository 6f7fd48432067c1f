{{
    config(
        materialized='incremental',
        unique_key='member_id',
        incremental_strategy='merge',
        on_schema_change='sync_all_columns',
        indexes=[{'columns': ['member_id'], 'unique': true}],
        post_hook=[
            "{{ analyze_if_new(this) }}",
            "delete from {{ this }} d where not exists (select 1 from {{ ref('fct_registrations') }} r where r.member_id = d.member_id)",
        ],
    )
}}
-- One row per member (a person across every channel): when first seen, which channels,
-- how many events registered and attended, no-shows, consent. Member ids only: names,
-- e-mails and phones are in pii.pii_members.
-- Incremental: the members with a registration changed (or re-identified) since the
-- last run are recomputed from all their registrations; members merged into another
-- (their id no longer in fct_registrations) are deleted.
with
{% if is_incremental() %}
touched as (
    -- two index ranges, unioned (an OR would scan the whole fact)
    select member_id from {{ ref('fct_registrations') }}
    where registration_updated_at > (
        select coalesce(max(registration_updated_at), '-infinity'::timestamptz)
               - interval '{{ var("incremental_lookback") }}'
        from {{ this }}
    )
    union
    select member_id from {{ ref('fct_registrations') }}
    where identity_changed_at > (
        select coalesce(max(identity_changed_at), '-infinity'::timestamptz) from {{ this }}
    )
),
registrations as (
    select * from {{ ref('fct_registrations') }}
    where member_id in (select member_id from touched)
),
{% else %}
registrations as (
    select * from {{ ref('fct_registrations') }}
),
{% endif %}
first_record as (
    select distinct on (member_id) member_id, channel as first_channel
    from registrations
    order by member_id, registration_first_seen_at, channel, platform_registration_id
)
select
    r.member_id,
    min(r.registration_first_seen_at) as first_seen_at,
    max(r.registration_first_seen_at) as last_seen_at,
    f.first_channel,
    array_agg(distinct r.channel order by r.channel) as channels_used,
    count(distinct r.channel) as count_channels,
    count(*) as count_registrations,
    count(distinct r.event_id) as count_events_registered,
    count(distinct r.event_id) filter (where r.is_checked_in) as count_events_attended,
    count(*) filter (where r.is_no_show) as count_no_shows,
    count(*) filter (where r.is_cancelled) as count_cancellations,
    count(*) filter (where r.is_paid) as count_paid_registrations,
    bool_or(r.has_consent) as has_consent,
    max(r.consent_at) as last_consent_at,
    max(r.registration_updated_at) as registration_updated_at,
    max(r.identity_changed_at) as identity_changed_at
from registrations r
join first_record f on f.member_id = r.member_id
group by r.member_id, f.first_channel
