-- One row per state change (app.audit_log): entity, action, actor, reason.
select
    id as audit_id,
    entity,
    entity_id,
    action,
    actor,
    reason,
    data,
    at as audited_at
from {{ source('app', 'audit_log') }}
