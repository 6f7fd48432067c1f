{#- Functions the staging models call, created before every run in the target schema.

    hub_try_jsonb: a raw body (bytea) as jsonb, or NULL when it is not UTF-8 JSON. Raw rows
    keep malformed and flagged requests (principle 1); staging must read them without
    failing on the one that is not JSON. -#}
{% macro create_hub_functions() %}
create schema if not exists {{ target.schema }};
create or replace function {{ target.schema }}.hub_try_jsonb(body bytea) returns jsonb
language plpgsql immutable parallel safe as $fn$
begin
    return convert_from(body, 'UTF8')::jsonb;
exception when others then
    return null;
end
$fn$;
{% endmacro %}

{#- The jsonb of a raw row's body (see create_hub_functions). -#}
{% macro raw_json(column='body') -%}
{{ target.schema }}.hub_try_jsonb({{ column }})
{%- endmacro %}
