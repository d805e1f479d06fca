-- enqueue: store a task message and queue (or delay) its id. docs/PROTOCOL.md#enqueue
-- KEYS: msg, pending, delayed, result:<id>, done:<id>
-- ARGV: id, message, delay_ms, eta_ms, cap, wake_channel
local id = ARGV[1]
local cap = tonumber(ARGV[5])
if cap > 0 and redis.call('HLEN', KEYS[1]) >= cap then
  -- A submit-and-wait pipelines a blocking wait on done:<id> behind this
  -- call: wake it now rather than at its time-out.
  redis.call('RPUSH', KEYS[5], 'REFUSED')
  redis.call('PEXPIRE', KEYS[5], 60000)
  return redis.error_reply('taskq queue full')
end
if redis.call('HSETNX', KEYS[1], id, ARGV[2]) == 0 then
  return redis.error_reply('taskq duplicate id')
end
redis.call('DEL', KEYS[4], KEYS[5])
local delay = tonumber(ARGV[3])
local eta = tonumber(ARGV[4])
if delay > 0 or eta > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local due = now + delay
  if eta > due then due = eta end
  if due > now then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    redis.call('ZADD', KEYS[3], due, id)
    if first[2] == nil or tonumber(first[2]) > due then
      redis.call('PUBLISH', ARGV[6], 'd')
    end
    return 2
  end
end
if redis.call('LPUSH', KEYS[2], id) == 1 then
  redis.call('PUBLISH', ARGV[6], 'p')
end
return 1
