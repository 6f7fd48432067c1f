{#- After every run: the analyst role (var analyst_role), when it exists, may read the
    marts and nothing else; nobody but the owner reads pii. Roles are cluster objects the
    hub does not create (ops do, per environment); a missing role is not an error. -#}
{% macro grant_analyst_access() %}
{% set role = var('analyst_role') %}
do $grants$
begin
    if exists (select 1 from pg_namespace where nspname = 'pii') then
        execute 'revoke all on schema pii from public';
        execute 'revoke all on all tables in schema pii from public';
    end if;
    if exists (select 1 from pg_roles where rolname = '{{ role }}') then
        if exists (select 1 from pg_namespace where nspname = 'marts') then
            execute format('grant usage on schema marts to %I', '{{ role }}');
            execute format('grant select on all tables in schema marts to %I', '{{ role }}');
        end if;
        if exists (select 1 from pg_namespace where nspname = 'pii') then
            execute format('revoke all on schema pii from %I', '{{ role }}');
            execute format('revoke all on all tables in schema pii from %I', '{{ role }}');
        end if;
    end if;
end
$grants$;
{% endmacro %}
