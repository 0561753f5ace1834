-- Resets a key's consecutive failures. KEYS[1]: the key's hash. Returns 1 when it was non-zero.
local f = redis.call('HGET', KEYS[1], 'f')
if f and f ~= '0' then
  redis.call('HSET', KEYS[1], 'f', 0)
  return 1
end
return 0
