-- The identity keys in clear (e-mail, phone, platform account) behind each key_hash of
-- marts.fct_identity_merges.
select distinct member_id, key_type, key_value, key_hash
from {{ ref('int_identity__merges') }}
