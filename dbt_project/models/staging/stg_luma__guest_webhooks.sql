-- One row per Luma webhook delivery (raw.webhook_events, source 'luma'): guest and
-- ticket events as Luma sent them (unverified hints: the ingest re-reads the guest).
with source as (
    select *, {{ raw_json() }} as payload
    from {{ source('raw', 'webhook_events') }}
    where source = 'luma'
)
select
    id as webhook_event_id,
    coalesce(payload ->> 'type', event_type) as luma_event_type,
    coalesce(payload -> 'data' ->> 'api_id', payload -> 'data' -> 'guest' ->> 'api_id',
             payload -> 'data' ->> 'id', payload -> 'data' ->> 'guest_id') as guest_id,
    coalesce(payload -> 'data' -> 'event' ->> 'api_id', payload -> 'data' -> 'event' ->> 'id',
             payload -> 'data' ->> 'event_api_id', payload -> 'data' ->> 'event_id') as luma_event_id,
    payload -> 'data' ->> 'approval_status' as approval_status,
    nullif(payload -> 'data' ->> 'checked_in_at', '')::timestamptz as checked_in_at,
    status,
    flag,
    verified as is_verified,
    received_at,
    processed_at
from source
