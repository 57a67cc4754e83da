{#- Models land in the schema they name (silver, gold), not "<target>_<schema>".
    var schema_suffix isolates a run (tests build into silver_<suffix> / gold_<suffix>). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set base = custom_schema_name if custom_schema_name is not none else target.schema -%}
    {%- if var('schema_suffix', none) -%}{{ base }}_{{ var('schema_suffix') }}{%- else -%}{{ base }}{%- endif -%}
{%- endmacro %}
