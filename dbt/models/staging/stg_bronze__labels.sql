{#- One label per transaction: fraud if any label says so; known from the first fraud label. -#}
select
    transaction_id,
    max_by(card_id, label_time) as card_id,
    max(case when is_fraud then 1 else 0 end) as is_fraud,
    min(case when is_fraud then cast(label_time as timestamp(3) with time zone) end) as label_time,
    max_by(fraud_scenario, label_time) filter (where is_fraud) as fraud_scenario,
    max(cast(ingested_at as timestamp(3) with time zone)) as ingested_at
from {{ source('bronze', 'labels') }}
group by transaction_id
