-- Each payment with how it was matched: the method of its latest 'matched' audit row
-- (ref, email_amount, a person's decision ...), else its state.
with matched as (
    select distinct on (entity_id)
        entity_id::bigint as payment_id,
        coalesce(data ->> 'method', 'manual') as match_method,
        actor as matched_by,
        audited_at as matched_at
    from {{ ref('stg_app__audit_log') }}
    where entity = 'payment' and action = 'matched' and entity_id ~ '^[0-9]+$'
    order by entity_id, audited_at desc, audit_id desc
)
select
    p.*,
    case
        when p.registration_id is not null then coalesce(m.match_method, 'linked')
        when p.payment_status = 'unmatched' then 'unmatched'
        else 'pending'
    end as match_method,
    m.matched_by,
    m.matched_at
from {{ ref('stg_app__payments') }} p
left join matched m on m.payment_id = p.payment_id
