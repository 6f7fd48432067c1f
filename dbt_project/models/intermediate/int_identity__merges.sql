-- The merge table: for every record and each key it has, how many records of its member
-- share that key. A key shared by two or more records is what joined them; a member
-- whose records share no key with each other directly was joined transitively (A=B by
-- e-mail, B=C by phone). Priority follows hub.members: e-mail, then phone, then account.
with members as (
    select * from {{ ref('int_identity__members') }}
),
keys as (
    select member_id, record_id, platform, 'email' as key_type, 1 as key_priority, email_key as key_value
    from members where email_key is not null
    union all
    select member_id, record_id, platform, 'phone', 2, phone_key
    from members where phone_key is not null
    union all
    select member_id, record_id, platform, 'account', 3, account_key
    from members where account_key is not null
)
select
    member_id,
    record_id,
    platform,
    key_type,
    key_priority,
    key_value,
    md5(key_type || ':' || key_value) as key_hash,
    count(*) over (partition by member_id, key_type, key_value) as count_records_sharing_key
from keys
