-- One row per page pulled from a platform (raw.platform_pulls): cursor, item count and
-- the page envelope each adapter keeps (Meetup's counts, Luma's has_more, Eventbrite's
-- pagination).
with source as (
    select *, {{ raw_json() }} as payload from {{ source('raw', 'platform_pulls') }}
)
select
    id as platform_pull_id,
    source as platform,
    platform_event_id,
    cursor_in,
    cursor_out,
    item_count as count_items,
    status,
    flag,
    body_size as body_size_bytes,
    verified as is_verified,
    payload is not null as is_json,
    coalesce(
        (payload -> 'pageInfo' ->> 'hasNextPage')::boolean,
        (payload ->> 'has_more')::boolean,
        (payload -> 'pagination' ->> 'has_more_items')::boolean
    ) as has_more,
    coalesce(
        (payload ->> 'totalCount')::bigint,
        (payload -> 'pagination' ->> 'object_count')::bigint
    ) as platform_total_count,
    payload,
    received_at,
    processed_at
from source
