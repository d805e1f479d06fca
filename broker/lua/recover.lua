-- recover: put tasks whose lease expired back at the head of their queue.
-- Idempotent and safe to run concurrently. docs/PROTOCOL.md#recover
-- KEYS: lease, owner, pending, lost
-- ARGV: max, wake_channel
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for i = 1, #ids do
  local id = ids[i]
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HINCRBY', KEYS[4], id, 1)
  if redis.call('RPUSH', KEYS[3], id) == 1 then
    redis.call('PUBLISH', ARGV[2], 'p')
  end
end
return #ids
