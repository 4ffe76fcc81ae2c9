-- typed-sessions RedisStore: apply one changeset atomically.
--
-- KEYS[1] the session's hash; KEYS[2] the source hash for mode M.
-- ARGV: mode, now_ms, created_at_ms, last_seen_ms, expires_at_ms, ttl_ms,
--       lease_until_ms (mode F), marker (mode F), call id,
--       n_copy, n_copy × (field, value)                          (mode I),
--       n_changes, n_changes × (meta field '@n:<ns>', field prefix '<ns>:',
--         version, expected revision or '', op R|P|D, n_fields,
--         n_fields × (field '<ns>:<name>', value))
-- Modes: C create, U update, M rename KEYS[2] -> KEYS[1] (same slot),
--        F freeze KEYS[1] for a cross-slot rename (check the guards, mark it
--          moving, return its fields), I install a frozen copy under KEYS[1]
--          and apply the changes.
-- Replies: {'saved', rev...} | {'deleted'} | {'missing'} | {'conflict', i} |
--          {'exists'} | {'moving'} | {'frozen', field, value, ...}
--
-- Kept lean: an update is one HMGET (liveness, counter, every guard), one
-- HSET (fields, revisions, counter, deadline) and one PEXPIRE.
--
-- Safe to run twice: a client may send a call again when its connection
-- dropped before the reply (a Redis Cluster client does so by itself). A
-- save records '@x' = '<call id>|<revisions>' and a second run of the same
-- call returns that reply instead of applying the changes again.

local mode = ARGV[1]
local now = tonumber(ARGV[2])
local call_id = ARGV[9]
local key = KEYS[1]
local src = key
if mode == 'M' then src = KEYS[2] end

-- Whether a move marker ('<target>|<lease end>') still holds.
local function lease_holds(marker)
  local bar = string.find(marker, '|', 1, true)
  local lease_end = bar and tonumber(string.sub(marker, bar + 1))
  return lease_end ~= nil and lease_end > now
end

-- The reply of this call when '@x' shows it ran already, else nil. '@x'
-- keeps the last four calls, each ';<id>|<revisions>', so a call sent
-- again still finds itself after a few other writes.
local function replay(x)
  if not x then return nil end
  local at = string.find(x, ';' .. call_id .. '|', 1, true)
  if not at then return nil end
  local from = at + #call_id + 2
  local to = (string.find(x, ';', from, true) or (#x + 1)) - 1
  if string.sub(x, from, to) == 'd' then return {'deleted'} end
  local reply = {'saved'}
  for r in string.gmatch(string.sub(x, from, to), '[^,]+') do
    reply[#reply + 1] = tonumber(r)
  end
  return reply
end

-- '@x' with this call's entry first and at most three older ones.
local function remember(x, revisions)
  local entry = ';' .. call_id .. '|' .. table.concat(revisions, ',', 2)
  if not x then return entry end
  local cut = 0
  for _ = 1, 3 do
    cut = string.find(x, ';', cut + 1, true)
    if not cut then return entry .. x end
  end
  local fourth = string.find(x, ';', cut + 1, true)
  if fourth then return entry .. string.sub(x, 1, fourth - 1) end
  return entry .. x
end

-- For a key to be written from scratch: 'free' (a dead or foreign key is
-- deleted first), 'taken' by a live record, or this call's reply when this
-- very call wrote it already.
local function claim(k)
  if redis.call('EXISTS', k) == 0 then return 'free' end
  local m = redis.call('HMGET', k, '@e', '@x')
  local again = replay(m[2])
  if again then return again end
  local e = tonumber(m[1])
  if e and e > now then return 'taken' end
  redis.call('DEL', k)
  return 'free'
end

-- The changes, and the metadata fields to read in one HMGET.
local i = 10
local copy_first = i + 1
local n_copy = tonumber(ARGV[i])
i = i + 1 + 2 * n_copy
local n = tonumber(ARGV[i])
i = i + 1
local changes = {}
local want = {'@e', '@m', '@r', '@x'}
for c = 1, n do
  local nf = tonumber(ARGV[i + 5])
  changes[c] = {meta = ARGV[i], prefix = ARGV[i + 1], ver = ARGV[i + 2], exp = ARGV[i + 3],
                op = ARGV[i + 4], first = i + 6, nf = nf}
  want[4 + c] = ARGV[i]
  i = i + 6 + 2 * nf
end

local got = {}
local counter = 0
local stale_marker = false
local previous_calls = nil
if mode == 'C' or mode == 'I' then
  local claimed = claim(key)
  if claimed == 'taken' then return {'exists'} end
  if claimed ~= 'free' then return claimed end
else
  got = redis.call('HMGET', src, unpack(want))
  local again = replay(got[4])
  if again then return again end
  local e = tonumber(got[1])
  if not e or e <= now then
    -- A rename that ran already moved the record to KEYS[1].
    if mode == 'M' then
      again = replay(redis.call('HGET', key, '@x'))
      if again then return again end
    end
    return {'missing'}
  end
  if got[2] then
    if lease_holds(got[2]) then
      -- Being moved: refuses writes. A freeze sent again by this very
      -- move runs again (it only sets the same marker and reads).
      local ours = mode == 'F' and string.sub(got[2], 1, #ARGV[8] + 1) == ARGV[8] .. '|'
      if not ours then return {'moving'} end
    else
      stale_marker = true
    end
  end
  counter = tonumber(got[3]) or 0
  previous_calls = got[4]
  if mode == 'M' then
    local claimed = claim(key)
    if claimed == 'taken' then return {'exists'} end
    if claimed ~= 'free' then return claimed end
  end
end

-- Guards: all checked before anything is written. For mode I the record
-- is not there yet: the guards ran when it was frozen.
if mode ~= 'I' then
  for c, ch in ipairs(changes) do
    local meta = got[4 + c]
    local sver, srev = nil, 0
    if meta then
      local colon = string.find(meta, ':', 1, true)
      if not colon then return redis.error_reply('malformed namespace entry ' .. ch.meta) end
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
local function call_many(cmd, k, args)
  local step = 1000
  for first = 1, #args, step do
    local last = math.min(first + step - 1, #args)
    redis.call(cmd, k, unpack(args, first, last))
  end
end

if mode == 'F' then
  redis.call('HSET', src, '@m', ARGV[8] .. '|' .. ARGV[7])
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

if mode == 'I' then
  local copied = {}
  for f = copy_first, copy_first + 2 * n_copy - 1, 2 do
    copied[#copied + 1] = ARGV[f]
    copied[#copied + 1] = ARGV[f + 1]
    if ARGV[f] == '@r' then counter = tonumber(ARGV[f + 1]) or 0 end
    if ARGV[f] == '@x' then previous_calls = ARGV[f + 1] end
  end
  if #copied > 0 then call_many('HSET', key, copied) end
elseif mode == 'M' then
  redis.call('RENAME', src, key)
end
-- A move that never finished (its lease ran out) leaves a marker behind.
if stale_marker then redis.call('HDEL', key, '@m') end

-- Removes the fields of a namespace that may be stored (Replace, Remove).
local keys_before = nil
local function drop_fields(prefix)
  if not keys_before then keys_before = redis.call('HKEYS', key) end
  local doomed = {}
  for _, f in ipairs(keys_before) do
    if string.sub(f, 1, #prefix) == prefix then doomed[#doomed + 1] = f end
  end
  if #doomed > 0 then call_many('HDEL', key, doomed) end
end

local set = {}
local revisions = {'saved'}
local removed, kept = false, false
for c, ch in ipairs(changes) do
  local stored = mode == 'I' or got[4 + c]
  if stored and ch.op ~= 'P' then drop_fields(ch.prefix) end
  if ch.op == 'D' then
    if stored then redis.call('HDEL', key, ch.meta) end
    revisions[c + 1] = 0
    removed = true
  else
    counter = counter + 1
    set[#set + 1] = ch.meta
    set[#set + 1] = ch.ver .. ':' .. counter
    for f = ch.first, ch.first + 2 * ch.nf - 1, 2 do
      set[#set + 1] = ARGV[f]
      set[#set + 1] = ARGV[f + 1]
    end
    revisions[c + 1] = counter
    kept = true
  end
end

if removed and not kept then
  local any = false
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 3) == '@n:' then any = true break end
  end
  if not any then
    -- Gone; only this call's id stays for a minute, so that the same call
    -- sent again answers 'deleted' too.
    redis.call('DEL', key)
    redis.call('HSET', key, '@x', ';' .. call_id .. '|d')
    redis.call('PEXPIRE', key, 60000)
    return {'deleted'}
  end
end

set[#set + 1] = '@x'
set[#set + 1] = remember(previous_calls, revisions)
set[#set + 1] = '@r'
set[#set + 1] = counter
set[#set + 1] = '@l'
set[#set + 1] = ARGV[4]
set[#set + 1] = '@e'
set[#set + 1] = ARGV[5]
if mode == 'C' then
  set[#set + 1] = '@c'
  set[#set + 1] = ARGV[3]
end
call_many('HSET', key, set)
-- Relative to the caller's clock, which also decides '@e': a clock that
-- differs from the server's cannot make Redis drop a session early.
redis.call('PEXPIRE', key, ARGV[6])
return revisions
