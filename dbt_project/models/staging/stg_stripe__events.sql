-- One row per Stripe event delivered (raw.webhook_events, source 'stripe'), typed from
-- the event JSON: what object it is about, the PaymentIntent, amounts, our references.
with source as (
    select *, {{ raw_json() }} as payload
    from {{ source('raw', 'webhook_events') }}
    where source = 'stripe'
),
parsed as (
    select *, payload -> 'data' -> 'object' as obj from source
)
select
    id as webhook_event_id,
    payload ->> 'id' as stripe_event_id,
    coalesce(payload ->> 'type', event_type) as stripe_event_type,
    coalesce((payload ->> 'livemode')::boolean, false) as is_livemode,
    to_timestamp(nullif(payload ->> 'created', '')::double precision) as stripe_created_at,
    obj ->> 'id' as object_id,
    obj ->> 'object' as object_type,
    coalesce(obj ->> 'payment_intent',
             case when obj ->> 'object' = 'payment_intent' then obj ->> 'id' end) as payment_intent_id,
    coalesce(nullif(obj ->> 'amount_total', ''), nullif(obj ->> 'amount_received', ''),
             nullif(obj ->> 'amount', ''))::bigint as amount_minor,
    nullif(obj ->> 'amount_refunded', '')::bigint as amount_refunded_minor,
    upper(obj ->> 'currency') as currency,
    obj ->> 'payment_status' as object_payment_status,
    obj ->> 'status' as object_status,
    obj ->> 'client_reference_id' as client_reference_id,
    obj -> 'metadata' ->> 'order_no' as order_no,
    obj -> 'metadata' ->> 'event_id' as metadata_event_id,
    status,
    flag,
    verified as is_verified,
    received_at,
    processed_at
from parsed
