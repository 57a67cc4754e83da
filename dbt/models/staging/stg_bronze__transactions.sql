{#- Typed, deduplicated transactions. A view over Bronze: late events (old event_time, new
    ingest_time) are simply there; the incremental models downstream pick them up by ingest time. -#}
with ranked as (
    select
        *,
        row_number() over (
            partition by transaction_id
            order by ingested_at, kafka_partition, kafka_offset
        ) as copy_rank
    from {{ source('bronze', 'transactions') }}
)

select
    transaction_id,
    card_id,
    customer_id,
    terminal_id,
    merchant_name,
    cast(event_time as timestamp(3) with time zone) as event_time,
    {{ epoch_ms('event_time') }} as event_time_ms,
    cast(amount as decimal(12, 2)) as amount,
    upper(currency) as currency,
    nullif(trim(mcc), '') as mcc,
    lower(channel) as channel,
    nullif(device_id, '') as device_id,
    latitude,
    longitude,
    upper(nullif(country, '')) as country,
    cast(ingested_at as timestamp(3) with time zone) as ingested_at
from ranked
where copy_rank = 1
