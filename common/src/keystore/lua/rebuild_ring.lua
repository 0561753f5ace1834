-- Rebuilds the rotation list from the id set, atomically replacing the old one.
-- KEYS[1]: rotation list. KEYS[2]: id set. KEYS[3]: scratch list. KEYS[4]: the "loaded"
-- marker, set here: the pool is now complete. ARGV[1]: key-hash prefix.
-- Also drops ids whose hash is gone. Returns the number of active keys.
redis.call('DEL', KEYS[3])
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local st = redis.call('HGET', ARGV[1] .. id, 'st')
  if not st then
    redis.call('SREM', KEYS[2], id)
  elseif st == 'a' then
    redis.call('RPUSH', KEYS[3], id)
    n = n + 1
  end
end
if n > 0 then
  redis.call('RENAME', KEYS[3], KEYS[1])
else
  redis.call('DEL', KEYS[1])
end
redis.call('SET', KEYS[4], '1')
return n
