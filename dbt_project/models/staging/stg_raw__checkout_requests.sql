-- One row per native checkout request as received (raw.checkout_requests).
select
    id as checkout_request_id,
    source,
    dedupe_key,
    idempotency_key,
    status,
    flag,
    last_error,
    body_size as body_size_bytes,
    verified as is_verified,
    flag is not null as is_flagged,
    received_at,
    processed_at
from {{ source('raw', 'checkout_requests') }}
