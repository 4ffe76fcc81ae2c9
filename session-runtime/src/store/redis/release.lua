-- typed-sessions RedisStore: the end of a cross-slot rename, on the source.
-- KEYS[1] the source hash; ARGV: 'finish' or 'abort', the marker.
-- finish: replace the source, if it is still frozen by this marker, with a
--   tombstone ('@m' = 'done|<marker>', one minute to live) so that the
--   same finish sent again answers the same.
-- abort: remove this marker, making the source live again.
-- Reply: 1 done, 0 the marker is not (or no longer) this one, -1 no source,
-- 2 (abort only) the move had finished already.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local marker = redis.call('HGET', KEYS[1], '@m')
if not marker then return 0 end
if marker == 'done|' .. ARGV[2] then
  if ARGV[1] == 'finish' then return 1 end
  return 2
end
local bar = string.find(marker, '|', 1, true)
if not bar or string.sub(marker, 1, bar - 1) ~= ARGV[2] then return 0 end
if ARGV[1] == 'finish' then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], '@m', 'done|' .. ARGV[2])
  redis.call('PEXPIRE', KEYS[1], 60000)
else
  redis.call('HDEL', KEYS[1], '@m')
end
return 1
