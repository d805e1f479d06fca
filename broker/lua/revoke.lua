-- revoke: cancel a task that has not started. docs/PROTOCOL.md#revoke
-- KEYS: msg, held, delayed, result:<id>, done:<id>, lost
-- ARGV: id, record, result_ttl_ms
local id = ARGV[1]
if redis.call('ZSCORE', KEYS[2], id) then return -1 end
if redis.call('HEXISTS', KEYS[1], id) == 0 then
  local d = redis.call('LINDEX', KEYS[5], 0)
  if d and d ~= 'REFUSED' then return -2 end
  return 0
end
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[3], id)
redis.call('HDEL', KEYS[6], id)
-- The final record lives in the done list; an older intermediate record goes.
redis.call('DEL', KEYS[4], KEYS[5])
redis.call('RPUSH', KEYS[5], ARGV[2])
redis.call('PEXPIRE', KEYS[5], ARGV[3])
return 1
