-- requeue: put tasks this worker holds back at the head of the queue (fenced).
-- docs/PROTOCOL.md#requeue
-- KEYS: held, leases, pending
-- ARGV: lease, wake_channel, id...
-- @include release
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if release(KEYS[1], KEYS[2], ARGV[1], id) then
    if redis.call('RPUSH', KEYS[3], id) == 1 then
      redis.call('PUBLISH', ARGV[2], 'p')
    end
    n = n + 1
  end
end
return n
