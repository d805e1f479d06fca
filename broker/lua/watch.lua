-- watch: what a blocking wait for a task's final record sends right before
-- its BLMOVE on done:<id>: register the waiter for window_ms (an ack then
-- pushes the record to done:<id>) or, when the record exists already, put it
-- in done:<id> so the BLMOVE returns at once; then the task's state, as the
-- state script replies. docs/PROTOCOL.md#results
-- KEYS: msg, held, result:<id>, done:<id>, results, waiting
-- ARGV: id, window_ms
-- @include results
local id = ARGV[1]
local r = results_find(KEYS[5], id)
if r then
  if redis.call('EXISTS', KEYS[4]) == 0 then
    redis.call('RPUSH', KEYS[4], r)
    redis.call('PEXPIRE', KEYS[4], 60000)
  end
else
  local t = redis.call('TIME')
  -- Some slack past the window: the BLMOVE starts a little after this.
  local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) +
    tonumber(ARGV[2]) + 5000
  redis.call('ZADD', KEYS[6], 'GT', deadline, id)
  if redis.call('PEXPIRETIME', KEYS[6]) < deadline then
    redis.call('PEXPIREAT', KEYS[6], deadline)
  end
  r = redis.call('GET', KEYS[3])
end
local running = redis.call('ZSCORE', KEYS[2], id) and 1 or 0
return {r, running, redis.call('HEXISTS', KEYS[1], id)}
