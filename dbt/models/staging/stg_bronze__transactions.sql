{#- Typed, deduplicated transactions: the first record of each transaction_id wins (by ingest
    time, then Kafka position). Late events (old event_time, new ingest time) are simply there; the
    incremental models downstream pick them up by ingest time.

    Incremental, so the deduplication runs once per record instead of in every query that reads
    Silver (as a view it ranked all of Bronze each time: ~1 GB of Trino memory at 1 M rows). A run
    reads only the Bronze rows ingested since the last one and keeps those whose transaction_id is
    not in the table yet, so a later copy never replaces the first. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='transaction_id',
        on_schema_change='fail',
    )
}}

with new_rows as (
    select * from {{ source('bronze', 'transactions') }}
    {%- if is_incremental() %}
        -- >=: Bronze keeps microseconds, this table milliseconds; rows seen before drop out below
        where ingested_at >= (
                select coalesce(max(ingested_at), timestamp '1970-01-01 00:00:00 UTC') from {{ this }}
            )
    {%- endif %}
),

ranked as (
    select
        new_rows.*,
        row_number() over (
            partition by new_rows.transaction_id
            order by new_rows.ingested_at, new_rows.kafka_partition, new_rows.kafka_offset
        ) as copy_rank
    from new_rows
    {%- if is_incremental() %}
        left join {{ this }} as seen on new_rows.transaction_id = seen.transaction_id
        where seen.transaction_id is null
    {%- endif %}
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
