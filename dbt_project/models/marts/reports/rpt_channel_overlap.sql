-- How many members use more than one platform: one row per combination of channels
-- (e.g. {eventbrite,luma}), with its member count and share of all members.
select
    array_to_string(channels_used, '+') as channel_combination,
    count_channels,
    count(*) as count_members,
    round(100.0 * count(*) / sum(count(*)) over (), 1) as pct_of_members
from {{ ref('dim_members') }}
group by channels_used, count_channels
