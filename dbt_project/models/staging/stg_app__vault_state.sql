-- The vault's current key (app.vault_state, one row): its fingerprint, never a key.
select
    id as vault_state_id,
    primary_key_id as primary_key_fingerprint,
    updated_at
from {{ source('app', 'vault_state') }}
