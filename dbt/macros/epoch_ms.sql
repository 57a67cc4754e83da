{#- Epoch milliseconds (bigint) of a timestamp with time zone: the integer time the feature
    windows are computed on, exactly as features.py / ml.pit do. -#}
{% macro epoch_ms(column) -%}
    cast(round(to_unixtime({{ column }}) * 1000) as bigint)
{%- endmacro %}

{#- Window lengths in ms, from features.py (CARD_WINDOWS / TERMINAL_WINDOWS). -#}
{% macro window_ms(name) -%}
    {%- set windows = {'1h': 3600000, '24h': 86400000, '7d': 604800000, '30d': 2592000000, '90d': 7776000000} -%}
    {{ windows[name] }}
{%- endmacro %}

{#- The snapshot time of the *_latest marts: var snapshot_at (a UTC timestamp string) or now. -#}
{% macro snapshot_at() -%}
    {%- if var('snapshot_at') -%}
        cast(from_iso8601_timestamp('{{ var("snapshot_at") }}') as timestamp(3) with time zone)
    {%- else -%}
        cast(current_timestamp as timestamp(3) with time zone)
    {%- endif -%}
{%- endmacro %}
