-- The review queue: payments no confident rule matched (status unmatched) or not yet
-- matched (received), with the matcher's score, reasons and candidate count. The payer's
-- name and e-mail are in pii.pii_payments_review.
select
    payment_id,
    provider,
    provider_payment_id,
    payment_status,
    amount_minor,
    currency,
    event_id,
    match_score,
    match_reasons,
    count_candidates,
    reference is not null as has_reference,
    coalesce(paid_at, created_at) as paid_at,
    created_at,
    now() - created_at as waiting_for
from {{ ref('stg_app__payments') }} p
where payment_kind = 'payment'
  and payment_status in ('unmatched', 'received')
  -- a native order's own Stripe payment is matched by the order (fct_orders)
  and not exists (
      select 1 from {{ ref('stg_app__orders') }} o
      where p.provider = 'stripe' and o.stripe_payment_intent = p.provider_payment_id
  )
