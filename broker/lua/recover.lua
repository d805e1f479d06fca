-- recover: put tasks whose lease expired back at the head of their queue.
-- Idempotent and safe to run concurrently. docs/PROTOCOL.md#recover
-- KEYS: held, leases, pending, lost, lease, owner
-- ARGV: max, wake_channel
-- (lease and owner: the layout before held and leases, read only to take
-- back what they still hold)
-- A lease covers one fetch: every task still held under its token comes
-- back with it, and the lease goes once none is left. max bounds the tasks
-- one call moves (a lease can hold up to a whole prefetch window), so a
-- lease with more waits, partly done, for the next call.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local budget = tonumber(ARGV[1])
local leases = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, budget)
local n = 0
for _, lease in ipairs(leases) do
  if budget <= 0 then break end
  local token = string.match(lease, '^%d+')
  local ids = {}
  if token then
    ids = redis.call('ZRANGEBYSCORE', KEYS[1], token, token, 'LIMIT', 0, budget)
  end
  for i = 1, #ids, 500 do
    local chunk = {unpack(ids, i, math.min(i + 499, #ids))}
    redis.call('ZREM', KEYS[1], unpack(chunk))
    for _, id in ipairs(chunk) do redis.call('HINCRBY', KEYS[4], id, 1) end
    if redis.call('RPUSH', KEYS[3], unpack(chunk)) == #chunk then
      redis.call('PUBLISH', ARGV[2], 'p')
    end
  end
  n = n + #ids
  budget = budget - #ids
  if not token or redis.call('ZCOUNT', KEYS[1], token, token) == 0 then
    redis.call('ZREM', KEYS[2], lease)
  end
end
-- A worker of the previous layout leased each task in lease (id -> deadline)
-- with its owner in owner. Its expired leases come back the same way, so
-- an upgrade loses nothing a stopped or killed old worker held. Once they
-- are gone the two keys no longer exist, and this is one read of nothing.
if budget <= 0 then return n end
local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, budget)
for _, id in ipairs(old) do
  redis.call('ZREM', KEYS[5], id)
  redis.call('HDEL', KEYS[6], id)
  redis.call('HINCRBY', KEYS[4], id, 1)
  if redis.call('RPUSH', KEYS[3], id) == 1 then
    redis.call('PUBLISH', ARGV[2], 'p')
  end
end
return n + #old
