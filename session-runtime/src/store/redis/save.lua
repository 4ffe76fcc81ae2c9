-- typed-sessions RedisStore: apply one changeset atomically.
--
-- KEYS[1] the session's hash; KEYS[2] the source hash for mode M.
-- ARGV: mode, now_ms, created_at_ms, last_seen_ms, expires_at_ms,
--       lease_until_ms (mode F), marker (mode F),
--       n_copy, n_copy × (field, value)              (mode I),
--       n_changes, n_changes × (namespace, version, expected revision or '',
--                               op R|P|D, n_fields, n_fields × (field, value))
-- Modes: C create, U update, M rename KEYS[2] -> KEYS[1] (same slot),
--        F freeze KEYS[1] for a cross-slot rename (check the guards, mark it
--          moving, return its fields), I install a frozen copy under KEYS[1]
--          and apply the changes.
-- Replies: {'saved', rev...} | {'deleted'} | {'missing'} | {'conflict', i} |
--          {'exists'} | {'frozen', field, value, ...}

local mode = ARGV[1]
local now = tonumber(ARGV[2])

-- A record is live when it has a deadline in the future and is not being
-- moved (a '@m' marker whose lease has not run out).
local function state(key)
  local meta = redis.call('HMGET', key, '@e', '@m')
  if not meta[1] then
    if redis.call('EXISTS', key) == 1 then return 'dead' end
    return 'absent'
  end
  if tonumber(meta[1]) <= now then return 'dead' end
  if meta[2] then
    local bar = string.find(meta[2], '|', 1, true)
    if bar and tonumber(string.sub(meta[2], bar + 1)) > now then return 'moving' end
    return 'stale-marker'
  end
  return 'live'
end

local function is_live(s) return s == 'live' or s == 'stale-marker' end

-- Arguments after the fixed ones.
local i = 8
local copy_from = i + 1
i = i + 1 + 2 * tonumber(ARGV[i])
local n = tonumber(ARGV[i])
i = i + 1
local changes = {}
for c = 1, n do
  local nf = tonumber(ARGV[i + 4])
  changes[c] = {ns = ARGV[i], ver = ARGV[i + 1], exp = ARGV[i + 2], op = ARGV[i + 3], first = i + 5, nf = nf}
  i = i + 5 + 2 * nf
end

local key = KEYS[1]
local src = key
local stale_marker = false
if mode == 'M' then src = KEYS[2] end

-- Where the record comes from.
if mode == 'C' or mode == 'I' then
  local s = state(key)
  if is_live(s) or s == 'moving' then return {'exists'} end
  if s ~= 'absent' then redis.call('DEL', key) end
else
  local s = state(src)
  if not is_live(s) then return {'missing'} end
  stale_marker = s == 'stale-marker'
  if mode == 'M' then
    local t = state(key)
    if is_live(t) or t == 'moving' then return {'exists'} end
  end
end

-- Guards: all checked before anything is written. For mode I the record
-- is not there yet: the guards ran when it was frozen.
if mode ~= 'I' then
  for c, ch in ipairs(changes) do
    local meta = redis.call('HGET', src, '@n:' .. ch.ns)
    local sver, srev = nil, 0
    if meta then
      local colon = string.find(meta, ':', 1, true)
      sver = string.sub(meta, 1, colon - 1)
      srev = tonumber(string.sub(meta, colon + 1))
    end
    if ch.exp ~= '' and tonumber(ch.exp) ~= srev then return {'conflict', c} end
    if ch.op == 'P' and ((not meta) or sver ~= ch.ver) then return {'conflict', c} end
    if ch.op == 'D' and meta and sver ~= ch.ver then return {'conflict', c} end
  end
end

-- Calls a command with a long argument list in slices (Lua's unpack has
-- a stack limit).
local function call_many(cmd, key, args)
  local step = 1000
  for first = 1, #args, step do
    local last = math.min(first + step - 1, #args)
    redis.call(cmd, key, unpack(args, first, last))
  end
end

if mode == 'F' then
  redis.call('HSET', src, '@m', ARGV[7] .. '|' .. ARGV[6])
  local all = redis.call('HGETALL', src)
  local reply = {'frozen'}
  for f = 1, #all, 2 do
    if all[f] ~= '@m' then
      reply[#reply + 1] = all[f]
      reply[#reply + 1] = all[f + 1]
    end
  end
  return reply
end

if mode == 'C' then
  redis.call('HSET', key, '@c', ARGV[3], '@r', 0)
elseif mode == 'I' then
  local copied = {}
  for f = copy_from, copy_from + 2 * tonumber(ARGV[8]) - 1 do copied[#copied + 1] = ARGV[f] end
  if #copied > 0 then call_many('HSET', key, copied) end
elseif mode == 'M' then
  redis.call('RENAME', src, key)
end
-- A move that never finished (its lease ran out) leaves a marker behind.
if stale_marker then redis.call('HDEL', key, '@m') end

local keys_before = nil
local function drop_fields(ns)
  if not keys_before then keys_before = redis.call('HKEYS', key) end
  local prefix = ns .. ':'
  local doomed = {}
  for _, f in ipairs(keys_before) do
    if string.sub(f, 1, #prefix) == prefix then doomed[#doomed + 1] = f end
  end
  if #doomed > 0 then call_many('HDEL', key, doomed) end
end

local revisions = {'saved'}
local removed = false
for c, ch in ipairs(changes) do
  if ch.op == 'D' then
    drop_fields(ch.ns)
    redis.call('HDEL', key, '@n:' .. ch.ns)
    revisions[c + 1] = 0
    removed = true
  else
    if ch.op == 'R' then drop_fields(ch.ns) end
    local rev = redis.call('HINCRBY', key, '@r', 1)
    local args = {'@n:' .. ch.ns, ch.ver .. ':' .. rev}
    for f = 0, ch.nf - 1 do
      args[#args + 1] = ch.ns .. ':' .. ARGV[ch.first + 2 * f]
      args[#args + 1] = ARGV[ch.first + 2 * f + 1]
    end
    call_many('HSET', key, args)
    revisions[c + 1] = rev
  end
end

if removed then
  local any = false
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 3) == '@n:' then any = true break end
  end
  if not any then
    redis.call('DEL', key)
    return {'deleted'}
  end
end

redis.call('HSET', key, '@l', ARGV[4], '@e', ARGV[5])
redis.call('PEXPIREAT', key, ARGV[5])
return revisions
