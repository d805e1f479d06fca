-- requeue: put tasks this worker holds back at the head of the queue (fenced).
-- docs/PROTOCOL.md#requeue
-- KEYS: lease, owner, pending
-- ARGV: token, wake_channel, id...
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local o = redis.call('HGET', KEYS[2], id)
  if o and string.match(o, '^%d+') == ARGV[1] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    if redis.call('RPUSH', KEYS[3], id) == 1 then
      redis.call('PUBLISH', ARGV[2], 'p')
    end
    n = n + 1
  end
end
return n
