-- revoke: cancel a task that has not started. docs/PROTOCOL.md#revoke
-- KEYS: msg, owner, delayed, result:<id>, done:<id>, lost
-- ARGV: id, record, result_ttl_ms
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[2], id) == 1 then return -1 end
if redis.call('HEXISTS', KEYS[1], id) == 0 then
  if redis.call('EXISTS', KEYS[4]) == 1 then return -2 end
  return 0
end
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[3], id)
redis.call('HDEL', KEYS[6], id)
redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[5])
redis.call('RPUSH', KEYS[5], 'REVOKED')
redis.call('PEXPIRE', KEYS[5], ARGV[3])
return 1
