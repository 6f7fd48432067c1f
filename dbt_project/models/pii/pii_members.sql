-- Contact details per member, for the people allowed to contact them (restricted schema
-- pii: analysts are granted marts only). The latest value written on any channel wins.
with records as (
    select m.member_id, r.*
    from {{ ref('int_identity__members') }} m
    join {{ ref('stg_app__registrations') }} r on r.registration_id = m.record_id
)
select
    member_id,
    (array_agg(full_name order by updated_at desc) filter (where full_name is not null))[1] as full_name,
    (array_agg(email order by updated_at desc) filter (where email is not null))[1] as email,
    (array_agg(phone_e164 order by updated_at desc) filter (where phone_e164 is not null))[1] as phone_e164,
    (array_agg(consent_text order by consent_at desc) filter (where consent_at is not null))[1] as consent_text,
    max(consent_at) as consent_at
from records
group by member_id
