{#- Per transaction: the terminal's transactions over [t - W, t) and, among them, the frauds whose
    label was already known at t (max(label_time, event_time) < t), for the terminal windows of
    features.py. A label that has not arrived never counts.

    A fraud f counts for a transaction at t iff known_f < t and t - W <= event_f < t, so the fraud
    counts are a join of each transaction with its terminal's (few) frauds.

    Incremental: a terminal's rows are recomputed from the earliest time a change can reach them:
    the earliest event time of its new transactions, or the earliest known time of its new labels. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='transaction_id',
        on_schema_change='fail',
    )
}}

{%- set windows = ['7d', '30d', '90d'] %}

with txn as (
    select
        transaction_id,
        terminal_id,
        event_time_ms,
        ingested_at
    from {{ ref('stg_bronze__transactions') }}
),

labels as (
    select * from {{ ref('stg_bronze__labels') }}
),

frauds as (
    select
        txn.terminal_id,
        txn.event_time_ms,
        greatest(coalesce({{ epoch_ms('labels.label_time') }}, txn.event_time_ms), txn.event_time_ms)
            as known_ms,
        labels.ingested_at as label_ingested_at
    from txn
    inner join labels on txn.transaction_id = labels.transaction_id
    where labels.is_fraud = 1
),

{% if is_incremental() %}
    watermarks as (
        select
            max(source_ingested_at) as txn_wm,
            max(labels_ingested_through) as label_wm
        from {{ this }}
    ),

    affected as (
        select
            terminal_id,
            min(from_ms) as from_ms
        from (
            select
                terminal_id,
                event_time_ms as from_ms
            from txn
            where ingested_at > (select txn_wm from watermarks)
            union all
            select
                terminal_id,
                known_ms + 1 as from_ms
            from frauds
            where label_ingested_at > (select coalesce(label_wm, timestamp '1970-01-01 00:00:00 UTC') from watermarks)
        ) as changes
        group by terminal_id
    ),

    targets as (
        select txn.*
        from txn
        inner join affected on txn.terminal_id = affected.terminal_id
        where txn.event_time_ms >= affected.from_ms
    ),

    history as (
        select txn.*
        from txn
        inner join affected on txn.terminal_id = affected.terminal_id
        where txn.event_time_ms >= affected.from_ms - {{ window_ms('90d') }}
    ),
{% else %}
    targets as (select * from txn),

    history as (select * from txn),
{% endif %}

counts as (
    select
        transaction_id,
        terminal_id,
        event_time_ms,
        ingested_at,
    {%- for w in windows %}
        count(*) over (
            partition by terminal_id order by event_time_ms
            range between {{ window_ms(w) }} preceding and 1 preceding
            ) as terminal_count_txn_{{ w }}{{ ',' if not loop.last }}
    {%- endfor %}
    from history
),

fraud_counts as (
    select
        t.transaction_id,
    {%- for w in windows %}
        count(case when f.event_time_ms >= t.event_time_ms - {{ window_ms(w) }} then 1 end)
            as terminal_count_fraud_{{ w }}{{ ',' if not loop.last }}
    {%- endfor %}
    from targets as t
    inner join frauds as f
        on t.terminal_id = f.terminal_id
            and t.event_time_ms > f.event_time_ms
            and f.event_time_ms >= t.event_time_ms - {{ window_ms('90d') }}
            and t.event_time_ms > f.known_ms
    group by t.transaction_id
)

select
    c.transaction_id,
    c.terminal_id,
    c.event_time_ms,
    {%- for w in windows %}
        c.terminal_count_txn_{{ w }},
        coalesce(fc.terminal_count_fraud_{{ w }}, 0) as terminal_count_fraud_{{ w }},
    {%- endfor %}
    c.ingested_at as source_ingested_at,
    (select max(l.ingested_at) from labels as l) as labels_ingested_through,
    current_timestamp as computed_at
from counts as c
inner join targets as t on c.transaction_id = t.transaction_id
left join fraud_counts as fc on c.transaction_id = fc.transaction_id
