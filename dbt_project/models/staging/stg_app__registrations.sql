with

source as (

    select * from {{ source('app', 'registrations') }}

),

renamed as (

    select
        ---------- ids
        id as registration_id,
        event_id,
        platform_registration_id,
        platform_event_id,

        ---------- text
        platform,
        full_name,
        email_normalized as email,
        phone_e164,
        status as registration_status,
        payment_status,
        currency,

        ---------- numbers
        amount_minor,

        ---------- timestamps
        registered_at,
        platform_updated_at,
        created_at,
        updated_at

    from source

)

select * from renamed
