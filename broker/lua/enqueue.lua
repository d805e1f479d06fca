-- enqueue: store one task message and queue (or delay) its id: what a
-- single submit sends. docs/PROTOCOL.md#enqueue
-- KEYS: msg, pending, delayed, done:<id>, results, waiting, result:<id>
-- ARGV: id, message, cap, wake_channel, fresh, wait_ms, delay_ms, eta_ms
-- The last three keys are passed only when fresh is 0 or wait_ms is set,
-- wait_ms only when it or a delay is set, delay_ms and eta_ms only when one
-- of them is: each key and argument costs Redis a Lua string, and this runs
-- once per submitted task. fresh has enqueue_many's meaning; wait_ms > 0: a
-- blocking wait of that long on done:<id> is pipelined behind this call
-- (its waiter is registered, docs/PROTOCOL.md#results).
-- Returns enqueue_many's code for the task: 1 queued, 2 delayed, -1
-- duplicate id, -2 queue full.
-- @include due
-- @include results
-- @include results_wait
local id = ARGV[1]
local cap = tonumber(ARGV[3])
if cap > 0 and redis.call('HLEN', KEYS[1]) >= cap then
  -- A submit-and-wait pipelines a blocking wait on done:<id> behind this
  -- call: wake it now rather than at its time-out.
  redis.call('RPUSH', KEYS[4], 'REFUSED')
  redis.call('PEXPIRE', KEYS[4], 60000)
  return -2
end
local fresh = ARGV[5]
local wait = tonumber(ARGV[6] or 0)
if fresh == '1' then
  -- Drawn from 128 random bits just now: neither queued nor finished.
  redis.call('HSET', KEYS[1], id, ARGV[2])
elseif redis.call('HSETNX', KEYS[1], id, ARGV[2]) == 0 then
  return -1
elseif fresh == '0' then
  -- An id chosen by a user may have finished before: its old records go.
  redis.call('DEL', KEYS[4], KEYS[7])
  results_forget(KEYS[5], {id}, 1)
end
local t
if wait > 0 then
  t = redis.call('TIME')
  results_register(KEYS[6], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), id, wait)
end
local delay = tonumber(ARGV[7] or 0)
local eta = tonumber(ARGV[8] or 0)
if delay > 0 or eta > 0 then
  t = t or redis.call('TIME')
  local due = due_at(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), delay, eta)
  if due > 0 then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    redis.call('ZADD', KEYS[3], due, id)
    if first[2] == nil or tonumber(first[2]) > due then
      redis.call('PUBLISH', ARGV[4], 'd')
    end
    return 2
  end
end
if redis.call('LPUSH', KEYS[2], id) == 1 then
  redis.call('PUBLISH', ARGV[4], 'p')
end
return 1
