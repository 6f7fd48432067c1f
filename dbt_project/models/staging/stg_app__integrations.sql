-- One row per platform account connected (app.integrations). The ciphertext is never
-- read: only which account exists and when its credentials expire.
select
    id as integration_id,
    platform,
    account,
    expires_at,
    created_at,
    updated_at
from {{ source('app', 'integrations') }}
