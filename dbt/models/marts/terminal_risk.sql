{#- Risk tier of every terminal from its known fraud share (features.py terminal windows), as of
    the snapshot time: high when frauds cluster (a compromised terminal), medium on any recent fraud. -#}
select
    terminal_id,
    as_of,
    terminal_count_txn_30d,
    terminal_count_fraud_30d,
    terminal_count_txn_90d,
    terminal_count_fraud_90d,
    case when terminal_count_txn_30d > 0
            then cast(terminal_count_fraud_30d as double) / terminal_count_txn_30d
        else 0
    end as fraud_share_30d,
    case when terminal_count_txn_90d > 0
            then cast(terminal_count_fraud_90d as double) / terminal_count_txn_90d
        else 0
    end as fraud_share_90d,
    case
        when terminal_count_fraud_30d >= {{ var('risk_high_min_frauds', 3) }}
            or (
                terminal_count_txn_30d > 0
                and cast(terminal_count_fraud_30d as double) / terminal_count_txn_30d
                >= {{ var('risk_high_share', 0.2) }}
            )
            then 'high'
        when terminal_count_fraud_90d > 0 then 'medium'
        else 'low'
    end as risk_tier
from {{ ref('terminal_features_latest') }}
