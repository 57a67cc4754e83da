{#- The current aggregates of every terminal (features.TerminalFeatures) as of the snapshot time:
    transactions in [as_of - W, as_of) and, among them, frauds whose label was known before as_of. -#}
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
        t.terminal_id,
        t.event_time_ms,
        b.as_of,
        b.as_of_ms,
        coalesce(l.is_fraud, 0) = 1
        and greatest(coalesce({{ epoch_ms('l.label_time') }}, t.event_time_ms), t.event_time_ms) < b.as_of_ms
            as is_known_fraud
    from {{ ref('stg_bronze__transactions') }} as t
    cross join bounds as b
    left join {{ ref('stg_bronze__labels') }} as l on t.transaction_id = l.transaction_id
    where t.event_time_ms < b.as_of_ms
)

select
    terminal_id,
    max(as_of) as as_of,
{%- for w in ['7d', '30d', '90d'] %}
    count(*) filter (where event_time_ms >= as_of_ms - {{ window_ms(w) }}) as terminal_count_txn_{{ w }},
    count(*) filter (where event_time_ms >= as_of_ms - {{ window_ms(w) }} and is_known_fraud)
        as terminal_count_fraud_{{ w }}{{ ',' if not loop.last }}
{%- endfor %}
from txn
group by terminal_id
