-- Makes keys part of a group. KEYS[1]: rotation list. KEYS[2]: the group's id set.
-- ARGV[1]: key-hash prefix. ARGV[2]: 1 = keep the live state of keys already present (status,
-- failures, cool-down), 0 = overwrite it. ARGV[3]: 1 = maintain the rotation list (0 when the
-- caller rebuilds it). Then groups of 5: id, stored value, hash, status ('a'/'i'), failures.
local keep = ARGV[2] == '1'
local ring = ARGV[3] == '1'
for i = 4, #ARGV, 5 do
  local id, stored, hash, st, f = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local k = ARGV[1] .. id
  local prev = redis.call('HGET', k, 'st')
  redis.call('SADD', KEYS[2], id)
  if prev and keep then
    redis.call('HSET', k, 's', stored, 'h', hash)
  else
    redis.call('HSET', k, 's', stored, 'h', hash, 'st', st, 'f', f, 'cu', 0)
    if ring then
      if st == 'a' and prev ~= 'a' then
        redis.call('RPUSH', KEYS[1], id)
      elseif st ~= 'a' and prev == 'a' then
        redis.call('LREM', KEYS[1], 0, id)
      end
    end
  end
end
return 1
