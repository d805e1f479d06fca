-- extend: renew the leases a live worker still holds. docs/PROTOCOL.md#extend
-- KEYS: lease, owner
-- ARGV: lease_ms, token1, id1, token2, id2, ...
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i + 1]
  local o = redis.call('HGET', KEYS[2], id)
  if o and string.match(o, '^%d+') == ARGV[i] then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
