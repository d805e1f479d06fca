-- retry: schedule another attempt of a task this worker holds (fenced).
-- docs/PROTOCOL.md#retry
-- KEYS: msg, held, leases, lost, delayed, pending, result:<id>
-- ARGV: id, lease, message, record, delay_ms, result_ttl_ms, wake_channel
-- @include release
local id = ARGV[1]
if not release(KEYS[2], KEYS[3], ARGV[2], id) then return 0 end
redis.call('HDEL', KEYS[4], id)
redis.call('HSET', KEYS[1], id, ARGV[3])
redis.call('SET', KEYS[7], ARGV[4], 'PX', ARGV[6])
local delay = tonumber(ARGV[5])
if delay > 0 then
  local t = redis.call('TIME')
  local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + delay
  local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[5], due, id)
  if first[2] == nil or tonumber(first[2]) > due then
    redis.call('PUBLISH', ARGV[7], 'd')
  end
elseif redis.call('LPUSH', KEYS[6], id) == 1 then
  redis.call('PUBLISH', ARGV[7], 'p')
end
return 1
