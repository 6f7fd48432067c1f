-- Where each platform pull resumes (app.sync_cursors).
select
    platform,
    scope as platform_event_id,
    cursor,
    last_pulled_at,
    last_count
from {{ source('app', 'sync_cursors') }}
