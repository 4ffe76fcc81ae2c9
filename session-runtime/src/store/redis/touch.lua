-- typed-sessions RedisStore: a sliding refresh. Moves the deadline and the
-- last-seen time of a live session; never touches its data.
-- KEYS[1] the session's hash; ARGV: now_ms, last_seen_ms, expires_at_ms.
-- Reply: 1 when the session was live, else 0.
local meta = redis.call('HMGET', KEYS[1], '@e', '@m')
local now = tonumber(ARGV[1])
if not meta[1] or tonumber(meta[1]) <= now then return 0 end
if meta[2] then
  local bar = string.find(meta[2], '|', 1, true)
  if bar and tonumber(string.sub(meta[2], bar + 1)) > now then return 0 end
end
redis.call('HSET', KEYS[1], '@l', ARGV[2], '@e', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
