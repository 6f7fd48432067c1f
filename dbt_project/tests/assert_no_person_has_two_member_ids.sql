-- No person has two member ids: every identity key (identity e-mail, E.164 phone,
-- platform account) belongs to exactly one member.
{{ config(meta={'dagster': {'ref': {'name': 'int_identity__members'}}}) }}
with keys as (
    select 'email' as key_type, email_key as key_value, member_id
    from {{ ref('int_identity__members') }} where email_key is not null
    union all
    select 'phone', phone_key, member_id
    from {{ ref('int_identity__members') }} where phone_key is not null
    union all
    select 'account', account_key, member_id
    from {{ ref('int_identity__members') }} where account_key is not null
)
select key_type, count(distinct member_id) as members
from keys
group by key_type, key_value
having count(distinct member_id) > 1
