{#- The training set: one row per transaction with the point-in-time aggregates that features.py
    turns into the model's vector (column names as in features.INPUT_COLUMNS), the label and when
    it became known. Must equal the Python reference builder (ml.pit) on the same data.

    Incremental: rows whose card or terminal aggregates were recomputed since the last build, or
    whose label arrived since, are merged. -#}
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

card as (
    select * from {{ ref('int_card_activity_windowed') }}
),

terminal as (
    select * from {{ ref('int_terminal_activity_windowed') }}
),

labels as (
    select * from {{ ref('stg_bronze__labels') }}
),

{% if is_incremental() %}
    last_build as (
        select
            max(computed_at) as built_at,
            max(labels_ingested_through) as label_wm
        from {{ this }}
    ),

    changed as (
        select transaction_id from card
        where computed_at > (select built_at from last_build)
        union distinct
        select transaction_id from terminal
        where computed_at > (select built_at from last_build)
        union distinct
        select transaction_id from labels
        where ingested_at > (select coalesce(label_wm, timestamp '1970-01-01 00:00:00 UTC') from last_build)
    ),
{% endif %}

joined as (
    select
        txn.transaction_id,
        txn.card_id,
        txn.terminal_id,
        txn.customer_id,
        txn.event_time,
        txn.event_time_ms,
        cast(txn.amount as double) as amount,
        txn.currency,
        txn.channel,
        txn.mcc,
        txn.device_id,
        txn.latitude,
        txn.longitude,
        txn.country,
        card.card_count_txn_1h,
        card.card_sum_amount_1h,
        card.card_count_txn_24h,
        card.card_sum_amount_24h,
        card.card_count_txn_7d,
        card.card_sum_amount_7d,
        card.card_count_txn_30d,
        card.card_sum_amount_30d,
        card.card_sum_amount_sq_30d,
        card.card_count_geo_30d,
        card.card_sum_latitude_30d,
        card.card_sum_longitude_30d,
        card.card_last_event_time_ms,
        card.card_last_latitude,
        card.card_last_longitude,
        card.card_terminal_seen_30d,
        card.card_device_seen_30d,
        card.card_country_seen_30d,
        terminal.terminal_count_txn_7d,
        terminal.terminal_count_fraud_7d,
        terminal.terminal_count_txn_30d,
        terminal.terminal_count_fraud_30d,
        terminal.terminal_count_txn_90d,
        terminal.terminal_count_fraud_90d,
        coalesce(labels.is_fraud, 0) as is_fraud,
        labels.label_time,
        labels.fraud_scenario,
        txn.ingested_at,
        (select max(l.ingested_at) from labels as l) as labels_ingested_through,
        current_timestamp as computed_at
    from txn
    inner join card on txn.transaction_id = card.transaction_id
    inner join terminal on txn.transaction_id = terminal.transaction_id
    left join labels on txn.transaction_id = labels.transaction_id
)

select * from joined
{% if is_incremental() %}
    where transaction_id in (select transaction_id from changed)
{% endif %}
