-- One row per payment or refund recorded (app.payments): Stripe events and parsed
-- "payment received" e-mails (provider = 'email'), with what the matcher weighed.
select
    id as payment_id,
    provider,
    provider_payment_id,
    kind as payment_kind,
    status as payment_status,
    amount_minor,
    upper(currency) as currency,
    payer_email,
    payer_email_normalized,
    payer_name,
    reference,
    registration_id,
    event_id,
    source_table,
    source_id,
    match_score,
    match_reasons,
    match_candidates,
    coalesce(jsonb_array_length(case when jsonb_typeof(match_candidates) = 'array'
                                     then match_candidates end), 0) as count_candidates,
    paid_at,
    created_at
from {{ source('app', 'payments') }}
