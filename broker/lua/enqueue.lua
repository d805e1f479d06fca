-- enqueue: store one task message and queue (or delay) its id: what a
-- single submit sends. docs/PROTOCOL.md#enqueue
-- KEYS: msg, pending, delayed, done:<id>, result:<id>
-- ARGV: id, message, cap, wake_channel, fresh, delay_ms, eta_ms
-- result:<id> is passed only when fresh is 0, delay_ms and eta_ms only when
-- one of them is set: each key and argument costs Redis a Lua string, and
-- this runs once per submitted task. fresh has enqueue_many's meaning.
-- Returns enqueue_many's code for the task: 1 queued, 2 delayed, -1
-- duplicate id, -2 queue full.
-- @include due
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
if fresh == '1' then
  -- Drawn from 128 random bits just now: neither queued nor finished.
  redis.call('HSET', KEYS[1], id, ARGV[2])
elseif redis.call('HSETNX', KEYS[1], id, ARGV[2]) == 0 then
  return -1
elseif fresh == '0' then
  -- An id chosen by a user may have finished before: its old records go.
  redis.call('DEL', KEYS[4], KEYS[5])
end
local delay = tonumber(ARGV[6] or 0)
local eta = tonumber(ARGV[7] or 0)
if delay > 0 or eta > 0 then
  local t = redis.call('TIME')
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
