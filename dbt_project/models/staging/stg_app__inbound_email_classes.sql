-- One row per classified inbound e-mail (app.inbound_email_classes): the parsed payment
-- e-mails are kind = 'payment' (their payments are in app.payments, provider 'email').
select
    raw_id as inbound_email_id,
    kind as email_kind,
    direction,
    bank,
    subject,
    reasons,
    payment_count as count_payments,
    classified_at
from {{ source('app', 'inbound_email_classes') }}
