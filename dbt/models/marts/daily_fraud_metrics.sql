{#- Daily volumes, amounts and fraud (as labelled so far) by channel, MCC, country and currency. -#}
with txn as (
    select
        t.*,
        coalesce(l.is_fraud, 0) as is_fraud
    from {{ ref('stg_bronze__transactions') }} as t
    left join {{ ref('stg_bronze__labels') }} as l on t.transaction_id = l.transaction_id
)

select
    cast(event_time as date) as event_date,
    coalesce(channel, 'unknown') as channel,
    coalesce(mcc, 'unknown') as mcc,
    coalesce(country, 'unknown') as country,
    currency,
    count(*) as count_txn,
    count(distinct card_id) as count_cards,
    sum(amount) as amount,
    sum(is_fraud) as count_fraud,
    coalesce(sum(amount) filter (where is_fraud = 1), 0) as fraud_amount,
    cast(sum(is_fraud) as double) / count(*) as fraud_rate
from txn
group by 1, 2, 3, 4, 5
