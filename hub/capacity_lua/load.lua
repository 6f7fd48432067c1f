-- Rebuild one event's gate from PostgreSQL's rows (hub/capacity.py, under the exclusive
-- advisory lock of the event). KEYS as ledger.lua.
-- ARGV[1] total, ARGV[2] shared, ARGV[3] n channels, then n pairs (channel, quota),
-- then per seat row: key, channel, pool, status (h|c|o), expiry_ms
local ev, holds, exp = KEYS[1], KEYS[2], KEYS[3]
redis.call('DEL', ev, holds, exp)
local info = redis.call('INFO', 'server')
local rid = string.match(info, 'run_id:(%x+)')
local fields = {'rid', rid, 'total', ARGV[1], 'shared', ARGV[2], 'su', 0}
local n = tonumber(ARGV[3])
local i = 4
for _ = 1, n do
  local ch = ARGV[i]
  table.insert(fields, 'q:' .. ch); table.insert(fields, ARGV[i + 1])
  for _, p in ipairs({'qu:', 'su:', 'h:', 'c:', 'o:'}) do
    table.insert(fields, p .. ch); table.insert(fields, 0)
  end
  i = i + 2
end
redis.call('HSET', ev, unpack(fields))
local rows = 0
while i + 4 <= #ARGV + 0 do
  local key, ch, pool, st, ex = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  redis.call('HSET', holds, key, st .. '|' .. ch .. '|' .. pool .. '|' .. ex .. '|rebuild')
  if st == 'h' then redis.call('ZADD', exp, tonumber(ex), key) end
  if st == 'o' then
    redis.call('HINCRBY', ev, 'o:' .. ch, 1)
  else
    redis.call('HINCRBY', ev, st .. ':' .. ch, 1)
    if pool == 'quota' then
      redis.call('HINCRBY', ev, 'qu:' .. ch, 1)
    elseif pool == 'shared' then
      redis.call('HINCRBY', ev, 'su:' .. ch, 1)
      redis.call('HINCRBY', ev, 'su', 1)
    end
  end
  rows = rows + 1
  i = i + 5
end
return rows
