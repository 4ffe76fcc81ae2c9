-- typed-sessions RedisStore: a sliding refresh. Moves the deadline and the
-- last-seen time of a live session; never touches its data.
-- KEYS[1] the session's hash; ARGV: now_ms, last_seen_ms, expires_at_ms,
-- ttl_ms (the deadline relative to now, from the caller's clock).
-- Reply: 1 when the session was live and not being moved, else 0.
local meta = redis.call('HMGET', KEYS[1], '@e', '@m')
local now = tonumber(ARGV[1])
local e = tonumber(meta[1])
if not e or e <= now then return 0 end
if meta[2] then
  local bar = string.find(meta[2], '|', 1, true)
  local lease_end = bar and tonumber(string.sub(meta[2], bar + 1))
  if lease_end and lease_end > now then return 0 end
end
redis.call('HSET', KEYS[1], '@l', ARGV[2], '@e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
