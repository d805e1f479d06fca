-- watch: what a blocking wait for a task's final record sends right before
-- its BLMOVE on done:<id>: register the waiter for window_ms (an ack then
-- pushes the record to done:<id>) or, when the record exists already, put it
-- in done:<id> so the BLMOVE returns at once; then the task's state, as the
-- state script replies. window_ms is at most 60000. docs/PROTOCOL.md#results
-- KEYS: msg, held, result:<id>, done:<id>, results, waiting
-- ARGV: id, window_ms
-- @include results
-- @include results_wait
local id = ARGV[1]
local r = results_find(KEYS[5], id)
if r then
  if redis.call('EXISTS', KEYS[4]) == 0 then
    redis.call('RPUSH', KEYS[4], r)
    redis.call('PEXPIRE', KEYS[4], 60000)
  end
else
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  -- Registrations past their deadline go here, on a waiter's time.
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
  results_register(KEYS[6], now, id, tonumber(ARGV[2]))
  r = redis.call('GET', KEYS[3])
end
local running = redis.call('ZSCORE', KEYS[2], id) and 1 or 0
return {r, running, redis.call('HEXISTS', KEYS[1], id)}
