-- dead_requeue: put a dead-lettered task back on its queue.
-- docs/PROTOCOL.md#dead_requeue
-- KEYS: dead, deadmsg, msg, pending, result:<id>, done:<id>, results
-- ARGV: id, message, wake_channel
-- @include results
local id = ARGV[1]
if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end
redis.call('HDEL', KEYS[2], id)
redis.call('HSET', KEYS[3], id, ARGV[2])
redis.call('DEL', KEYS[5], KEYS[6])
results_forget(KEYS[7], {id}, 1)
if redis.call('LPUSH', KEYS[4], id) == 1 then
  redis.call('PUBLISH', ARGV[3], 'p')
end
return 1
