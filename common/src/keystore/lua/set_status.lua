-- Sets keys' status. KEYS[1]: rotation list. ARGV[1]: key-hash prefix. ARGV[2]: 'a' or 'i'.
-- ARGV[3..]: key ids. Active keys get failures and cool-down reset and join the rotation.
-- Invariant kept by every script: the rotation list holds exactly the active keys, so a key
-- becoming active is appended and only a key leaving the active state is searched for.
for i = 3, #ARGV do
  local id = ARGV[i]
  local k = ARGV[1] .. id
  local st = redis.call('HGET', k, 'st')
  if st then
    if ARGV[2] == 'a' then
      redis.call('HSET', k, 'st', 'a', 'f', 0, 'cu', 0)
      if st ~= 'a' then
        redis.call('RPUSH', KEYS[1], id)
      end
    elseif st == 'a' then
      redis.call('HSET', k, 'st', 'i')
      redis.call('LREM', KEYS[1], 0, id)
    end
  end
end
return 1
