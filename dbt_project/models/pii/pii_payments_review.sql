-- The payer details of the review queue (marts.fct_payments_unmatched), for the person
-- who decides.
select
    u.payment_id,
    p.payer_name,
    p.payer_email,
    p.reference
from {{ ref('fct_payments_unmatched') }} u
join {{ ref('stg_app__payments') }} p on p.payment_id = u.payment_id
