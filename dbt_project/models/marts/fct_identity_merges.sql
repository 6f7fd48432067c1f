{{ config(materialized="view") }}
-- Which keys joined which records into one member (int_identity__merges), with the key
-- as a hash: analysts see that two records shared an e-mail, not the e-mail.
select
    member_id,
    record_id as registration_id,
    platform as channel,
    key_type,
    key_priority,
    key_hash,
    count_records_sharing_key,
    count_records_sharing_key > 1 as is_joining_key
from {{ ref('int_identity__merges') }}
