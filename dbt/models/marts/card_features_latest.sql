{#- The current aggregates of every card (features.CardFeatures), as of the snapshot time: what
    feature_writer puts in Redis for /predict. Same window semantics as the per-transaction model:
    transactions strictly before as_of; recent sets are the distinct non-null values of [as_of - 30d, as_of). -#}
with params as (
    select {{ snapshot_at() }} as as_of
),

bounds as (
    select
        as_of,
        {{ epoch_ms('as_of') }} as as_of_ms
    from params
),

txn as (
    select
        t.*,
        b.as_of,
        b.as_of_ms
    from {{ ref('stg_bronze__transactions') }} as t
    cross join bounds as b
    where t.event_time_ms < b.as_of_ms
)

select
    card_id,
    max(as_of) as as_of,
    {%- for w in ['1h', '24h', '7d', '30d'] %}
        count(*) filter (where event_time_ms >= as_of_ms - {{ window_ms(w) }}) as card_count_txn_{{ w }},
        cast(coalesce(sum(amount) filter (where event_time_ms >= as_of_ms - {{ window_ms(w) }}), 0) as double)
            as card_sum_amount_{{ w }},
    {%- endfor %}
    cast(coalesce(sum(amount * amount) filter (where event_time_ms >= as_of_ms - {{ window_ms('30d') }}), 0) as double)
        as card_sum_amount_sq_30d,
    count(*) filter (
        where event_time_ms >= as_of_ms - {{ window_ms('30d') }} and latitude is not null and longitude is not null
    ) as card_count_geo_30d,
    coalesce(sum(latitude) filter (
        where event_time_ms >= as_of_ms - {{ window_ms('30d') }} and longitude is not null
    ), 0) as card_sum_latitude_30d,
    coalesce(sum(longitude) filter (
        where event_time_ms >= as_of_ms - {{ window_ms('30d') }} and latitude is not null
    ), 0) as card_sum_longitude_30d,
    max(event_time_ms) as card_last_event_time_ms,
    max_by(latitude, row(event_time_ms, transaction_id)) as card_last_latitude,
    max_by(longitude, row(event_time_ms, transaction_id)) as card_last_longitude,
{%- for field, col in [('terminal_ids', 'terminal_id'), ('device_ids', 'device_id'), ('countries', 'country')] %}
    coalesce(array_sort(array_distinct(array_agg({{ col }}) filter (
        where event_time_ms >= as_of_ms - {{ window_ms('30d') }} and {{ col }} is not null
        ))), cast(array[] as array(varchar))) as card_recent_{{ field }}{{ ',' if not loop.last }}
{%- endfor %}
from txn
group by card_id
