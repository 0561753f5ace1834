-- Counts a group's keys. KEYS[1]: the group's set of key ids. ARGV[1]: key-hash prefix.
-- Returns {active, invalid, cooling}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local a, inv, c = 0, 0, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HMGET', ARGV[1] .. id, 'st', 'cu')
  if v[1] == 'a' then
    a = a + 1
    if (tonumber(v[2]) or 0) > now then
      c = c + 1
    end
  elseif v[1] then
    inv = inv + 1
  end
end
return {a, inv, c}
