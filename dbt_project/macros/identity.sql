{#- Identity keys in SQL, the same rules as hub.members (Python).

    The e-mail column is already hub.members.normalize_email's output (the ingest stores
    it in email_normalized: lowercased, NFC, one '@'), so only identity_email's folding
    is done here: googlemail.com -> gmail.com; +tags dropped for the providers in var
    identity_plus_tag_domains; dots dropped in Gmail local parts. An empty result keeps
    the part it came from, as Python's `x or local` does. -#}
{% macro identity_email(column) -%}
{%- set aliases = var('identity_domain_aliases') -%}
{%- set plus = var('identity_plus_tag_domains') -%}
{%- set domain -%}
case split_part({{ column }}, '@', 2)
    {%- for alias, target in aliases.items() %} when '{{ alias }}' then '{{ target }}'{% endfor %}
    else split_part({{ column }}, '@', 2) end
{%- endset -%}
{%- set local_untagged -%}
case when ({{ domain }}) in ({% for d in plus %}'{{ d }}'{% if not loop.last %}, {% endif %}{% endfor %})
     then coalesce(nullif(split_part(split_part({{ column }}, '@', 1), '+', 1), ''),
                   split_part({{ column }}, '@', 1))
     else split_part({{ column }}, '@', 1) end
{%- endset -%}
case when {{ column }} is null or strpos({{ column }}, '@') = 0 then null
     else (case when ({{ domain }}) = 'gmail.com'
                then coalesce(nullif(replace({{ local_untagged }}, '.', ''), ''), {{ local_untagged }})
                else {{ local_untagged }} end)
          || '@' || ({{ domain }})
end
{%- endmacro %}

{#- A platform account that is one person on every event of that platform (Meetup's
    member id, Luma's user id); NULL for platforms without one (Eventbrite, native). -#}
{% macro account_key(platform, raw) -%}
case {{ platform }}
    when 'meetup' then 'meetup:' || nullif({{ raw }} -> 'member' ->> 'id', '')
    when 'luma' then 'luma:' || nullif({{ raw }} ->> 'user_api_id', '')
end
{%- endmacro %}

{#- The order of records inside a component: earliest first seen, then platform, then
    the platform's id. The smallest label names the component, so a member id (its md5)
    does not change when later records join. Fixed-width UTC text sorts like the tuple. -#}
{% macro record_label(first_seen_at, platform, platform_registration_id) -%}
to_char({{ first_seen_at }} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
    || '|' || {{ platform }} || '|' || {{ platform_registration_id }}
{%- endmacro %}

{#- Connected components by iterative label propagation, run after the model's rows
    are written (post-hook, same transaction). Rows written by this run carry
    label_changed_at = now() (the transaction's time): they are the first frontier. Each
    round gives every record sharing a key with a frontier record the smallest label
    among that key's records; the records whose label changed are the next frontier; it
    stops when a round changes nothing. A key's smallest label can only change when one
    of its records changed, so work is proportional to the components touched: an
    incremental run after a few new rows reads a few index ranges, not the table. -#}
{% macro propagate_identity_labels(relation) %}
do $propagate$
declare
    changed bigint;
    rounds int := 0;
begin
    if not exists (
        select 1 from pg_stats
        where schemaname = '{{ relation.schema }}' and tablename = '{{ relation.identifier }}'
    ) then
        execute 'analyze {{ relation }}';  -- a new table: plan the rounds on real statistics
    end if;
    drop table if exists _identity_frontier;
    drop table if exists _identity_next;
    create temp table _identity_frontier on commit drop as
        select email_key, phone_key, account_key from {{ relation }}
        where label_changed_at = now();
    create temp table _identity_next (email_key text, phone_key text, account_key text)
        on commit drop;
    loop
        rounds := rounds + 1;
        analyze _identity_frontier;
        {%- for key in ['email_key', 'phone_key', 'account_key'] %}
        with smallest as (
            select k.{{ key }}, min(k.label) as label
            from {{ relation }} k
            where k.{{ key }} in (
                select f.{{ key }} from _identity_frontier f where f.{{ key }} is not null
            )
            group by k.{{ key }}
        ),
        moved as (
            update {{ relation }} t
            set label = s.label, label_changed_at = now()
            from smallest s
            where t.{{ key }} = s.{{ key }} and t.label > s.label
            returning t.email_key, t.phone_key, t.account_key
        )
        insert into _identity_next select * from moved;
        {%- endfor %}
        select count(*) into changed from _identity_next;
        exit when changed = 0 or rounds > 1000;
        truncate _identity_frontier;
        insert into _identity_frontier select * from _identity_next;
        truncate _identity_next;
    end loop;
    raise notice 'identity: % rounds', rounds;
end
$propagate$;
{% endmacro %}

{#- Post-hook: remove rows whose source row is gone (a KVKK erasure deletes
    registrations). Counting first keeps the common case (nothing deleted) to two index
    counts instead of an anti-join over both tables. -#}
{% macro delete_vanished(relation, key, source_relation, source_key='id') %}
do $vanished$
begin
    if (select count(*) from {{ relation }}) > (select count(*) from {{ source_relation }}) then
        delete from {{ relation }} t
        where not exists (select 1 from {{ source_relation }} s where s.{{ source_key }} = t.{{ key }});
    end if;
end
$vanished$;
{% endmacro %}

{#- Pre-hook of int_identity__record_members in incremental runs: the records new or
    changed since the last run (var incremental_lookback before the newest one held),
    and every record of a component one of them belonged to, into the temp table
    _identity_selected (analyzed: the model then reads registrations by primary key
    instead of computing every row's keys). -#}
{% macro identity_select_changed(relation) %}
{% if is_incremental() %}
drop table if exists _identity_changed;
drop table if exists _identity_selected;
create temp table _identity_changed on commit drop as
    select g.id as record_id
    from {{ source('app', 'registrations') }} g
    where g.updated_at > (
        select coalesce(max(source_updated_at), '-infinity'::timestamptz)
               - interval '{{ var("incremental_lookback") }}'
        from {{ relation }}
    );
analyze _identity_changed;
create temp table _identity_selected on commit drop as
    select record_id from _identity_changed
    union
    select t.record_id from {{ relation }} t
    where t.label in (
        select o.label from {{ relation }} o join _identity_changed c on c.record_id = o.record_id
    );
analyze _identity_selected;
{% else %}
select 1;
{% endif %}
{% endmacro %}

{#- Post-hook: ANALYZE a table that has no statistics yet (just built by a full
    refresh), so the next incremental run's merge and lookups use its indexes instead of
    scanning it. Incremental runs find statistics and skip it. -#}
{% macro analyze_if_new(relation) %}
do $analyze$
begin
    if not exists (
        select 1 from pg_stats
        where schemaname = '{{ relation.schema }}' and tablename = '{{ relation.identifier }}'
    ) then
        execute 'analyze {{ relation }}';
    end if;
end
$analyze$;
{% endmacro %}
