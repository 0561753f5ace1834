-- Round-robin selection of an active key, in one round trip.
-- KEYS[1]: the group's rotation list of active key ids. KEYS[2]: the group's "loaded" marker.
-- ARGV[1]: key-hash name prefix.
-- Rotates the list (LMOVE head -> tail) until it finds an active key that is not cooling down;
-- drops ring entries whose key is gone or no longer active.
-- Returns {1, id, stored, hash, failures} | {2, ms until the first cool-down ends} | {0} |
-- {3} when the ring is empty because the pool itself is missing (no marker: Redis lost it).
local n = redis.call('LLEN', KEYS[1])
if n == 0 then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    return {3}
  end
  return {0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local earliest = -1
for _ = 1, n do
  local id = redis.call('LMOVE', KEYS[1], KEYS[1], 'LEFT', 'RIGHT')
  if not id then
    break
  end
  local v = redis.call('HMGET', ARGV[1] .. id, 'st', 'cu', 's', 'h', 'f')
  if v[1] ~= 'a' then
    redis.call('LREM', KEYS[1], 0, id)
  else
    local cu = tonumber(v[2]) or 0
    if cu <= now then
      return {1, id, v[3] or '', v[4] or '', tonumber(v[5]) or 0}
    end
    if earliest < 0 or cu < earliest then
      earliest = cu
    end
  end
end
if earliest >= 0 then
  return {2, earliest - now}
end
return {0}
