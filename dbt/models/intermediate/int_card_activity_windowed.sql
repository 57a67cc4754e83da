{#- Per transaction: the card's aggregates over [t - W, t) for the windows of features.py
    (strictly before t: a transaction never sees itself nor a same-millisecond sibling), the
    previous transaction (latest before t, ties by greatest transaction_id, whatever its age) and
    whether the card used this terminal / device / country in [t - 30d, t).

    Incremental: rows of cards that received transactions since the last run are recomputed from
    the earliest new event time onwards (a late event changes the windows of the card's later
    transactions), against the full history of those cards. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='transaction_id',
        on_schema_change='fail',
    )
}}

with txn as (
    select * from {{ ref('stg_bronze__transactions') }}
),

{% if is_incremental() %}
    affected as (
        select
            card_id,
            min(event_time_ms) as from_ms
        from txn
        where ingested_at > (select max(source_ingested_at) from {{ this }})
        group by card_id
    ),

    history as (
        select
            txn.*,
            affected.from_ms
        from txn
        inner join affected on txn.card_id = affected.card_id
    ),
{% else %}
    history as (
        select
            txn.*,
            cast(null as bigint) as from_ms
        from txn
    ),
{% endif %}

windowed as (
    select
        transaction_id,
        card_id,
        event_time_ms,
        from_ms,
        ingested_at,
        {%- for w in ['1h', '24h', '7d', '30d'] %}
            count(*) over card_{{ w }} as card_count_txn_{{ w }},
            coalesce(sum(amount) over card_{{ w }}, 0) as card_sum_amount_{{ w }},
        {%- endfor %}
        coalesce(sum(amount * amount) over card_30d, 0) as card_sum_amount_sq_30d,
        count(case when latitude is not null and longitude is not null then 1 end) over card_30d
            as card_count_geo_30d,
        coalesce(sum(case when longitude is not null then latitude end) over card_30d, 0)
            as card_sum_latitude_30d,
        coalesce(sum(case when latitude is not null then longitude end) over card_30d, 0)
            as card_sum_longitude_30d,
        max(event_time_ms) over card_before as card_last_event_time_ms,
        max_by(latitude, row(event_time_ms, transaction_id)) over card_before as card_last_latitude,
        max_by(longitude, row(event_time_ms, transaction_id)) over card_before as card_last_longitude,
        count(*) over (
            partition by card_id, terminal_id order by event_time_ms
            range between {{ window_ms('30d') }} preceding and 1 preceding
        ) as terminal_uses_30d,
        case when device_id is null then 0 else count(*) over (
                    partition by card_id, device_id order by event_time_ms
                    range between {{ window_ms('30d') }} preceding and 1 preceding
                )
        end as device_uses_30d,
        case when country is null then 0 else count(*) over (
                    partition by card_id, country order by event_time_ms
                    range between {{ window_ms('30d') }} preceding and 1 preceding
                )
        end as country_uses_30d
    from history
    window
        {%- for w in ['1h', '24h', '7d', '30d'] %}
            card_{{ w }} as (
                partition by card_id order by event_time_ms
                range between {{ window_ms(w) }} preceding and 1 preceding
            ),
        {%- endfor %}
        card_before as (
            partition by card_id order by event_time_ms
            range between unbounded preceding and 1 preceding
        )
)

select
    transaction_id,
    card_id,
    event_time_ms,
    {%- for w in ['1h', '24h', '7d', '30d'] %}
        card_count_txn_{{ w }},
        cast(card_sum_amount_{{ w }} as double) as card_sum_amount_{{ w }},
    {%- endfor %}
    cast(card_sum_amount_sq_30d as double) as card_sum_amount_sq_30d,
    card_count_geo_30d,
    card_sum_latitude_30d,
    card_sum_longitude_30d,
    card_last_event_time_ms,
    card_last_latitude,
    card_last_longitude,
    case when terminal_uses_30d > 0 then 1 else 0 end as card_terminal_seen_30d,
    case when device_uses_30d > 0 then 1 else 0 end as card_device_seen_30d,
    case when country_uses_30d > 0 then 1 else 0 end as card_country_seen_30d,
    ingested_at as source_ingested_at,
    current_timestamp as computed_at
from windowed
{% if is_incremental() %}
    where event_time_ms >= from_ms
{% endif %}
