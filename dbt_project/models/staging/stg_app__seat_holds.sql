-- One row per seat decision (app.seat_holds): a native hold or a platform seat.
select
    id as seat_hold_id,
    event_id,
    hold_key,
    channel,
    pool as seat_pool,
    seats,
    status as hold_status,
    expires_at,
    registration_id,
    order_no,
    reason,
    created_at,
    updated_at
from {{ source('app', 'seat_holds') }}
