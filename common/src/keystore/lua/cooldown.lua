-- Cools a key down for ARGV[1] milliseconds (never shortening a longer cool-down).
-- KEYS[1]: the key's hash.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untill = now + tonumber(ARGV[1])
local cu = tonumber(redis.call('HGET', KEYS[1], 'cu')) or 0
if untill > cu then
  redis.call('HSET', KEYS[1], 'cu', untill)
end
return 1
