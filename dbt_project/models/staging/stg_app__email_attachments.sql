-- One row per attachment of an inbound e-mail (app.email_attachments).
select
    id as email_attachment_id,
    raw_id as inbound_email_id,
    filename,
    content_type,
    size as size_bytes,
    sha256
from {{ source('app', 'email_attachments') }}
