-- requeue: put tasks this worker holds back at the head of the queue (fenced).
-- docs/PROTOCOL.md#requeue
-- KEYS: held, leases, pending
-- ARGV: lease, wake_channel, id...
local token = tonumber(string.match(ARGV[1], '^%d+'))
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local s = redis.call('ZSCORE', KEYS[1], id)
  if token and s and tonumber(s) == token then
    redis.call('ZREM', KEYS[1], id)
    if redis.call('RPUSH', KEYS[3], id) == 1 then
      redis.call('PUBLISH', ARGV[2], 'p')
    end
    n = n + 1
  end
end
-- A lease lives exactly as long as some task is held under its token.
if n > 0 and redis.call('ZCOUNT', KEYS[1], token, token) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return n
