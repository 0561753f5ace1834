-- Removes keys from a group. KEYS[1]: rotation list. KEYS[2]: id set. ARGV[1]: key-hash prefix.
-- ARGV[2..]: ids.
for i = 2, #ARGV do
  local id = ARGV[i]
  local k = ARGV[1] .. id
  if redis.call('HGET', k, 'st') == 'a' then
    redis.call('LREM', KEYS[1], 0, id)
  end
  redis.call('SREM', KEYS[2], id)
  redis.call('DEL', k)
end
return 1
