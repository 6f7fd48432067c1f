{{
    config(
        materialized='incremental',
        unique_key='record_id',
        incremental_strategy='merge',
        on_schema_change='sync_all_columns',
        indexes=[
            {'columns': ['record_id'], 'unique': true},
            {'columns': ['email_key']},
            {'columns': ['phone_key']},
            {'columns': ['account_key']},
            {'columns': ['label']},
            {'columns': ['label_changed_at']},
            {'columns': ['source_updated_at']},
        ],
        pre_hook=["{{ identity_select_changed(this) }}"],
        post_hook=[
            "{{ propagate_identity_labels(this) }}",
            "{{ delete_vanished(this, 'record_id', source('app', 'registrations')) }}",
        ],
    )
}}
-- Connected components of records that share a key: each record's label is the smallest
-- own_label of its component (macro propagate_identity_labels, post-hook), so its member
-- id, md5(label), is the earliest record's and survives later records joining.
-- Incrementally: the records new or changed since the last run, and every record of a
-- component one of them belonged to (reset to its own label, so a changed key can also
-- split a component), are written with label_changed_at = now(); propagation then only
-- walks the keys of those rows (macro identity_select_changed picks them into a temp
-- table first, analyzed, so the planner reads them through the indexes). Records
-- deleted upstream (KVKK erasure) are removed.
with
final as (
    select
        r.record_id,
        r.event_id,
        r.platform,
        r.platform_registration_id,
        r.first_seen_at,
        r.email_key,
        r.phone_key,
        r.account_key,
        r.own_label,
        r.own_label as label,
        r.source_updated_at,
        now() as label_changed_at
    from {{ ref('int_identity__records') }} r
    {% if is_incremental() %}
    where r.record_id in (select record_id from _identity_selected)
    {% endif %}
)
select * from final
