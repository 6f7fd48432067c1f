-- One row per native checkout (app.orders).
select
    order_no,
    event_id,
    idempotency_key,
    status as order_status,
    hold_id as seat_hold_id,
    registration_id,
    full_name,
    email_normalized as email,
    phone_e164,
    locale,
    consent_text,
    consent_at,
    ref_code,
    amount_minor,
    upper(currency) as currency,
    stripe_session_id,
    stripe_payment_intent,
    stripe_refund_id,
    hold_expires_at,
    created_at,
    updated_at
from {{ source('app', 'orders') }}
