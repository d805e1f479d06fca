-- revoke: cancel a task that has not started. docs/PROTOCOL.md#revoke
-- KEYS: msg, held, delayed, result:<id>, lost, results, waiting
-- ARGV: id, record, result_ttl_ms
-- @include results
-- @include results_put
local id = ARGV[1]
if redis.call('ZSCORE', KEYS[2], id) then return -1 end
if redis.call('HEXISTS', KEYS[1], id) == 0 then
  if results_find(KEYS[6], id) then return -2 end
  return 0
end
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[3], id)
redis.call('HDEL', KEYS[5], id)
-- The final record goes to the results; an older intermediate record goes.
redis.call('DEL', KEYS[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = {id, ARGV[2]}
results_put(KEYS[6], KEYS[7], now, tonumber(ARGV[3]), fields, 2)
return 1
