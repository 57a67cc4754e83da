{#- Live model monitoring: each prediction of the serving API joined with the label that arrived
    later, per day of prediction and model version. A transaction's first prediction per model
    version counts (a replay or retry does not count twice). Without a fraud label a prediction
    counts as genuine; that is final once its event is label_maturity_days old, so the figures of
    recent days are provisional (label_maturity_share says how much of the day is mature). -#}
with predictions as (
    select
        transaction_id,
        model_version,
        min_by(fraud_probability, predicted_at) as fraud_probability,
        min_by(decision, predicted_at) as decision,
        min(predicted_at) as predicted_at,
        min(event_time) as event_time
    from {{ source('predictions', 'prediction_log') }}
    group by transaction_id, model_version
),

scored as (
    select
        cast(p.predicted_at as date) as prediction_date,
        p.model_version,
        p.fraud_probability,
        if(p.decision in ('review', 'decline'), 1, 0) as is_alert,
        coalesce(l.is_fraud, 0) as is_fraud,
        if(
            l.is_fraud = 1
            or p.event_time < current_timestamp - interval '{{ var("label_maturity_days") }}' day,
            1, 0
        ) as is_mature,
        {#- average precision: each fraud adds the precision at its rank (highest scores first) -#}
        sum(coalesce(l.is_fraud, 0)) over (
            partition by cast(p.predicted_at as date), p.model_version
            order by p.fraud_probability desc, p.transaction_id asc
            rows between unbounded preceding and current row
        ) as frauds_ranked_above,
        row_number() over (
            partition by cast(p.predicted_at as date), p.model_version
            order by p.fraud_probability desc, p.transaction_id asc
        ) as score_rank
    from predictions as p
    left join {{ ref('stg_bronze__labels') }} as l on p.transaction_id = l.transaction_id
)

select
    prediction_date,
    model_version,
    count(*) as predictions,
    sum(is_alert) as alerts,
    sum(is_mature) as labelled,
    sum(is_fraud) as frauds,
    sum(is_alert * is_fraud) as true_alerts,
    if(sum(is_alert) > 0, cast(sum(is_alert * is_fraud) as double) / sum(is_alert)) as "precision",
    if(sum(is_fraud) > 0, cast(sum(is_alert * is_fraud) as double) / sum(is_fraud)) as recall,
    if(
        sum(is_fraud) > 0,
        sum(if(is_fraud = 1, cast(frauds_ranked_above as double) / score_rank, 0)) / sum(is_fraud)
    ) as average_precision,
    cast(sum(is_mature) as double) / count(*) as label_maturity_share
from scored
group by prediction_date, model_version
