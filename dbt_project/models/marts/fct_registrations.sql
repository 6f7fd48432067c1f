-- depends_on: {{ ref('int_identity__record_members') }}
{{
    config(
        materialized='incremental',
        unique_key='registration_id',
        incremental_strategy='merge',
        on_schema_change='sync_all_columns',
        indexes=[
            {'columns': ['registration_id'], 'unique': true},
            {'columns': ['member_id']},
            {'columns': ['event_id']},
            {'columns': ['registration_updated_at']},
            {'columns': ['identity_changed_at']},
        ],
        post_hook=[
            "{{ analyze_if_new(this) }}",
            "{{ delete_vanished(this, 'registration_id', source('app', 'registrations')) }}",
        ],
    )
}}
-- One row per registration on any channel: its member, status, payment and check-in.
-- Incremental on two clocks: the registration's updated_at (new, changed and
-- late-arriving rows: the hub stamps updated_at when it writes, whatever the platform's
-- own dates) and the identity's label_changed_at (a merge gives old rows a new member
-- id). The first re-reads var incremental_lookback before the newest value it holds
-- (a late commit); the second is written by the dbt run before this one, no lookback.
with
{% if is_incremental() %}
changed as (
    -- two index-friendly sets, unioned (an OR with a sub-select would be re-run per row)
    select registration_id from {{ ref('stg_app__registrations') }}
    where updated_at > (
        select coalesce(max(registration_updated_at), '-infinity'::timestamptz)
               - interval '{{ var("incremental_lookback") }}'
        from {{ this }}
    )
    union
    select record_id from {{ ref('int_identity__record_members') }}
    where label_changed_at > (
        select coalesce(max(identity_changed_at), '-infinity'::timestamptz) from {{ this }}
    )
),
{% endif %}
registrations as (
    select * from {{ ref('stg_app__registrations') }}
    {% if is_incremental() %}
    where registration_id in (select registration_id from changed)
    {% endif %}
),
members as (
    select record_id, member_id, first_seen_at, label_changed_at
    from {{ ref('int_identity__members') }}
)
select
    r.registration_id,
    m.member_id,
    r.event_id,
    r.platform as channel,
    r.platform_registration_id,
    r.registration_status,
    r.payment_status,
    r.registration_status in ('approved', 'attended', 'no_show') as is_approved,
    r.payment_status = 'paid' as is_paid,
    r.registration_status = 'attended' as is_checked_in,
    case when r.platform = 'luma' then nullif(r.platform_json ->> 'checked_in_at', '')::timestamptz end
        as checked_in_at,
    r.registration_status = 'no_show' as is_no_show,
    r.registration_status in ('cancelled', 'declined') as is_cancelled,
    r.amount_minor,
    r.currency,
    r.order_no,
    r.ref_code is not null as has_ref_code,
    r.consent_at is not null as has_consent,
    r.consent_at,
    m.first_seen_at as registration_first_seen_at,
    r.registered_at,
    r.updated_at as registration_updated_at,
    m.label_changed_at as identity_changed_at
from registrations r
join members m on m.record_id = r.registration_id
