-- The seat ledger's gate: one atomic decision per call (hub/capacity.py).
--
-- KEYS[1] event hash   <ns>:seats:<event_id>
--           rid          run_id of the Redis process that built it (a restart, even from an
--                        RDB snapshot, changes it: the state is rebuilt from PostgreSQL)
--           total shared q:<ch> (quota) qu:<ch> (quota used) su (shared used, all channels)
--           su:<ch> h:<ch> c:<ch> o:<ch> (held, confirmed, overbooked per channel)
-- KEYS[2] holds hash   hold_key -> "st|channel|pool|expiry_ms|nonce"  st: h held, c confirmed,
--                        o overbooked (no seat, pool none)
-- KEYS[3] expiry zset  hold_key -> expiry_ms of held entries (swept by every call)
-- ARGV[1] op, then the op's arguments. Replies are arrays whose first item is the outcome;
-- "REBUILD" when the event hash is missing or was built by another Redis process.
local ev, holds, exp = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]

local info = redis.call('INFO', 'server')
local rid = string.match(info, 'run_id:(%x+)')
if redis.call('HGET', ev, 'rid') ~= rid then
  return {'REBUILD'}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function parse(e)
  if not e then return nil end
  local st, ch, pool, ex, nonce = string.match(e, '^(%a)|(%w+)|(%a+)|(%-?%d*)|(.*)$')
  return {st = st, ch = ch, pool = pool, ex = tonumber(ex) or 0, nonce = nonce}
end

local function fmt(st, ch, pool, ex, nonce)
  return st .. '|' .. ch .. '|' .. pool .. '|' .. tostring(ex or 0) .. '|' .. (nonce or '')
end

-- count (delta +1) or uncount (-1) an entry in the event's counters
local function adj(e, d)
  if e.st == 'o' then
    redis.call('HINCRBY', ev, 'o:' .. e.ch, d)
    return
  end
  redis.call('HINCRBY', ev, e.st .. ':' .. e.ch, d)
  if e.pool == 'quota' then
    redis.call('HINCRBY', ev, 'qu:' .. e.ch, d)
  elseif e.pool == 'shared' then
    redis.call('HINCRBY', ev, 'su:' .. e.ch, d)
    redis.call('HINCRBY', ev, 'su', d)
  end
end

local function put(key, e)
  redis.call('HSET', holds, key, fmt(e.st, e.ch, e.pool, e.ex, e.nonce))
  if e.st == 'h' then
    redis.call('ZADD', exp, e.ex, key)
  else
    redis.call('ZREM', exp, key)
  end
  adj(e, 1)
end

local function drop(key, e)
  redis.call('HDEL', holds, key)
  redis.call('ZREM', exp, key)
  adj(e, -1)
end

-- expired holds free their seat (PostgreSQL's rows stay 'held' with a past expiry, which
-- hub.seat_counts does not count either, until release_expired_holds marks them)
local due = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 256)
for _, key in ipairs(due) do
  local e = parse(redis.call('HGET', holds, key))
  if e and e.st == 'h' then
    drop(key, e)
  else
    redis.call('ZREM', exp, key)
  end
end

-- the pool a channel takes its next seat from: own quota first, then shared; nil = full
local function seat(ch)
  local v = redis.call('HMGET', ev, 'q:' .. ch, 'qu:' .. ch, 'shared', 'su')
  if (tonumber(v[2]) or 0) < (tonumber(v[1]) or 0) then return 'quota' end
  if (tonumber(v[4]) or 0) < (tonumber(v[3]) or 0) then return 'shared' end
  return nil
end

local function raw(key)
  return redis.call('HGET', holds, key) or ''
end

if op == 'hold' then
  -- ARGV: channel, key, ttl_ms, nonce
  local ch, key, ttl, nonce = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
  local prev = raw(key)
  local e = parse(prev ~= '' and prev or nil)
  if e then
    local mine = (e.nonce == nonce) and 'held' or 'existing'
    return {mine, e.pool, e.ex, prev, e.st}
  end
  local pool = seat(ch)
  if not pool then return {'full', '', 0, '', ''} end
  local n = {st = 'h', ch = ch, pool = pool, ex = now + ttl, nonce = nonce}
  put(key, n)
  return {'held', pool, n.ex, prev, 'h'}

elseif op == 'confirm' then
  -- ARGV: key, nonce, channel, retake (1: a late confirm may take a free seat);
  -- reply: outcome, pool, prev, channel
  local key, nonce, ch, retake = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
  local prev = raw(key)
  local e = parse(prev ~= '' and prev or nil)
  if e then
    if e.st == 'h' then
      drop(key, e)
      put(key, {st = 'c', ch = e.ch, pool = e.pool, ex = 0, nonce = nonce})
      return {'confirmed', e.pool, prev, e.ch}
    end
    if e.nonce == nonce then return {'confirmed', e.pool, '', e.ch} end
    return {'already', e.pool, '', e.ch}
  end
  if not retake then return {'unknown', '', '', ch} end
  local pool = seat(ch)
  if not pool then return {'full', '', '', ch} end
  put(key, {st = 'c', ch = ch, pool = pool, ex = 0, nonce = nonce})
  return {'retaken', pool, '', ch}

elseif op == 'consume' then
  -- ARGV: channel, nonce, key1, key2, ... (platform seats); per key: outcome, pool, prev
  local ch, nonce = ARGV[2], ARGV[3]
  local out = {}
  for i = 4, #ARGV do
    local key = ARGV[i]
    local prev = raw(key)
    local e = parse(prev ~= '' and prev or nil)
    if e and e.st == 'h' then
      drop(key, e)
      put(key, {st = 'c', ch = e.ch, pool = e.pool, ex = 0, nonce = nonce})
      table.insert(out, 'confirmed'); table.insert(out, e.pool); table.insert(out, prev)
    elseif e then
      local st = (e.st == 'o') and 'overbooked' or 'confirmed'
      table.insert(out, (e.nonce == nonce) and st or 'existing')
      table.insert(out, e.pool); table.insert(out, '')
    else
      local pool = seat(ch)
      if pool then
        put(key, {st = 'c', ch = ch, pool = pool, ex = 0, nonce = nonce})
        table.insert(out, 'confirmed'); table.insert(out, pool)
      else
        put(key, {st = 'o', ch = ch, pool = 'none', ex = 0, nonce = nonce})
        table.insert(out, 'overbooked'); table.insert(out, 'none')
      end
      table.insert(out, prev)
    end
  end
  return out

elseif op == 'upgrade' then
  -- ARGV: nonce, key1, ...: overbooked platform seats take a seat freed since (their
  -- channel's quota, then shared); per key: outcome (confirmed|existing), pool, prev
  local nonce = ARGV[2]
  local out = {}
  for i = 3, #ARGV do
    local key = ARGV[i]
    local prev = raw(key)
    local e = parse(prev ~= '' and prev or nil)
    local pool = (e and e.st == 'o') and seat(e.ch) or nil
    if pool then
      drop(key, e)
      put(key, {st = 'c', ch = e.ch, pool = pool, ex = 0, nonce = nonce})
      table.insert(out, 'confirmed'); table.insert(out, pool); table.insert(out, prev)
    else
      table.insert(out, 'existing'); table.insert(out, e and e.pool or ''); table.insert(out, '')
    end
  end
  return out

elseif op == 'release' then
  -- ARGV: only_held (1/0), key1, ...; per key: outcome (released|kept|none), prev
  local only_held = ARGV[2] == '1'
  local out = {}
  for i = 3, #ARGV do
    local key = ARGV[i]
    local prev = raw(key)
    local e = parse(prev ~= '' and prev or nil)
    if not e then
      table.insert(out, 'none'); table.insert(out, '')
    elseif only_held and e.st ~= 'h' then
      table.insert(out, 'kept'); table.insert(out, '')
    else
      drop(key, e)
      table.insert(out, 'released'); table.insert(out, prev)
    end
  end
  return out

elseif op == 'restore' then
  -- ARGV: key, previous raw entry ('' = absent): the undo of a decision
  local key, prev = ARGV[2], ARGV[3]
  local cur = parse(redis.call('HGET', holds, key))
  if cur then drop(key, cur) end
  local p = parse(prev ~= '' and prev or nil)
  if p then put(key, p) end
  return {'restored'}

elseif op == 'state' then
  return {'state', redis.call('HGETALL', ev), now}

elseif op == 'probe' then
  return {'ok'}
end
return redis.error_reply('unknown ledger op ' .. tostring(op))
