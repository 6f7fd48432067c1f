with

source as (

    select * from {{ source('raw', 'webhook_events') }}

),

renamed as (

    select
        ---------- ids
        id as webhook_event_id,
        dedupe_key,

        ---------- text
        source as provider,
        event_type,
        status,
        flag,
        last_error,

        ---------- numbers
        body_size as body_size_bytes,
        attempts as count_attempts,

        ---------- booleans
        verified as is_verified,
        body_truncated as is_body_truncated,
        flag is not null as is_flagged,

        ---------- timestamps
        received_at,
        processed_at

    from source

)

select * from renamed
