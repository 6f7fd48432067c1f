-- One row per Eventbrite webhook delivery (raw.webhook_events, source 'eventbrite'): a
-- hint naming an order or attendee by its api_url, which the ingest re-reads.
with source as (
    select *, {{ raw_json() }} as payload
    from {{ source('raw', 'webhook_events') }}
    where source = 'eventbrite'
)
select
    id as webhook_event_id,
    coalesce(payload -> 'config' ->> 'action', event_type) as action,
    payload ->> 'api_url' as api_url,
    substring(payload ->> 'api_url' from '/orders/([0-9]+)') as order_id,
    substring(payload ->> 'api_url' from '/attendees/([0-9]+)') as attendee_id,
    substring(payload ->> 'api_url' from '/events/([0-9]+)') as eventbrite_event_id,
    payload -> 'config' ->> 'webhook_id' as webhook_id,
    status,
    flag,
    verified as is_verified,
    received_at,
    processed_at
from source
