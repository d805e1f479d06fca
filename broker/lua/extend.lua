-- extend: renew the leases a live worker still holds. docs/PROTOCOL.md#extend
-- KEYS: held, leases
-- ARGV: lease_ms, worker_id, token1, id1, token2, id2, ...
-- Returns the ids no longer held under the token given (lost).
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local lost, live = {}, {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i + 1]
  local s = redis.call('ZSCORE', KEYS[1], id)
  if s and tonumber(s) == tonumber(ARGV[i]) then
    live[ARGV[i]] = true
  else
    lost[#lost + 1] = id
  end
end
-- XX: a lease that recovery removed is not brought back (its tasks are no
-- longer held under it, so none of them counted as live above anyway).
for tok in pairs(live) do
  redis.call('ZADD', KEYS[2], 'XX', deadline, tok .. ' ' .. ARGV[2])
end
return lost
