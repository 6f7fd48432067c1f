-- One row per side effect queued for the relay (app.outbox); the payload is not copied
-- (it may hold a phone number or a message text).
select
    id as outbox_id,
    event_id,
    kind as outbox_kind,
    split_part(kind, '.', 1) as outbox_target,
    idempotency_key,
    status as outbox_status,
    attempts as count_attempts,
    last_error,
    next_attempt_at,
    created_at,
    delivered_at
from {{ source('app', 'outbox') }}
