-- One row per forwarded e-mail as received (raw.inbound_emails); the body is not read here.
select
    id as inbound_email_id,
    source as provider,
    dedupe_key,
    sender,
    subject,
    status,
    flag,
    last_error,
    body_size as body_size_bytes,
    attempts as count_attempts,
    verified as is_verified,
    body_truncated as is_body_truncated,
    flag is not null as is_flagged,
    received_at,
    processed_at
from {{ source('raw', 'inbound_emails') }}
