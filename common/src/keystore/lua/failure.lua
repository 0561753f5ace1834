-- Counts one failure against a key and blacklists it at the threshold, atomically.
-- KEYS[1]: rotation list.  KEYS[2]: the key's hash.  ARGV[1]: threshold (0 = never).  ARGV[2]: id.
-- Returns {failure_count, blacklisted_now (0/1), invalid_after (0/1)}.
local st = redis.call('HGET', KEYS[2], 'st')
if not st then
  return {0, 0, 0}
end
if st ~= 'a' then
  return {tonumber(redis.call('HGET', KEYS[2], 'f')) or 0, 0, 1}
end
local f = redis.call('HINCRBY', KEYS[2], 'f', 1)
local th = tonumber(ARGV[1]) or 0
if th > 0 and f >= th then
  redis.call('HSET', KEYS[2], 'st', 'i')
  redis.call('LREM', KEYS[1], 0, ARGV[2])
  return {f, 1, 1}
end
return {f, 0, 0}
