-- Eventbrite orders: the attendees of one order_id together (an order is bought by one
-- buyer and holds one or more attendees).
select
    order_id,
    min(event_id::text)::uuid as event_id,
    min(eventbrite_event_id) as eventbrite_event_id,
    count(*) as count_attendees,
    sum(gross_minor) as gross_minor,
    max(currency) as currency,
    bool_or(is_refunded) as has_refund,
    bool_and(is_cancelled) as is_cancelled,
    min(attendee_created_at) as ordered_at,
    max(updated_at) as updated_at
from {{ ref('stg_eventbrite__attendees') }}
where order_id is not null
group by order_id
