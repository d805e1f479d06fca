-- enqueue_many: enqueue a batch of tasks of one queue in one call: the same
-- effect as one enqueue per task, in order. docs/PROTOCOL.md#enqueue_many
-- KEYS: msg, pending, delayed, then results and per task result:<id>,
--   done:<id> (fresh 0); or nothing more (fresh 1 or 2)
-- ARGV: cap, wake_channel, fresh, n, then per task: id, message, delay_ms,
--   eta_ms; or id, message (no task of the call is delayed)
-- Returns one integer per task: 1 queued, 2 delayed, -1 duplicate id, -2 queue full
-- @include due
-- @include results
-- (Below the header, comments are not sent to Redis.)
-- The layout is told by the counts: each argument costs Redis a Lua string,
-- so a call passes only what it uses.
-- fresh = 1: every id was just drawn from 128 random bits by the caller, so
-- none is queued and none has an old record: the duplicate check and the
-- clean-up of old records are skipped (the bulk of Redis's enqueue work).
-- fresh = 2: the same ids resent after a broken link: checked for duplicates
-- (the first try may have got through).
local cap = tonumber(ARGV[1])
local fresh = ARGV[3] == '1'
local cleanup = ARGV[3] == '0'
local n = tonumber(ARGV[4])
-- Keys and arguments per task; task i's keys (fresh 0) are KEYS[3 + 2i]
-- and KEYS[4 + 2i].
local kpt = n > 0 and (#KEYS - (cleanup and 4 or 3)) / n or 0
local per = n > 0 and (#ARGV - 4) / n or 4
if (kpt ~= 0 and kpt ~= 2) or (n > 0 and cleanup ~= (kpt == 2)) or (per ~= 2 and per ~= 4) then
  return redis.error_reply('taskq enqueue_many: ' .. #KEYS .. ' keys and ' .. #ARGV ..
    ' arguments do not fit ' .. n .. ' tasks')
end
local size = cap > 0 and redis.call('HLEN', KEYS[1]) or 0
local now
local out, queued, stale, delayed, fields, gone = {}, {}, {}, {}, {}, {}
local earliest
-- Which ids are queued already: one HMGET per chunk instead of an HSETNX
-- per task; `seen` catches an id given twice in this batch.
local exists, seen = {}, {}
for i = 1, fresh and 0 or n, 500 do
  local ids = {}
  for k = i, math.min(i + 499, n) do ids[#ids + 1] = ARGV[5 + (k - 1) * per] end
  local ms = redis.call('HMGET', KEYS[1], unpack(ids))
  for k = 1, #ids do exists[i + k - 1] = ms[k] end
end
for i = 1, n do
  local b = 4 + (i - 1) * per
  local id = ARGV[b + 1]
  if cap > 0 and size >= cap then
    out[i] = -2
  elseif exists[i] or seen[id] then
    out[i] = -1
  else
    fields[#fields + 1] = id
    fields[#fields + 1] = ARGV[b + 2]
    size = size + 1
    if not fresh then seen[id] = true end
    if cleanup then
      stale[#stale + 1] = KEYS[3 + i * 2]
      stale[#stale + 1] = KEYS[4 + i * 2]
      gone[#gone + 1] = id
    end
    local due = 0
    local delay = per == 4 and tonumber(ARGV[b + 3]) or 0
    local eta = per == 4 and tonumber(ARGV[b + 4]) or 0
    if delay > 0 or eta > 0 then
      if not now then
        local t = redis.call('TIME')
        now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      end
      due = due_at(now, delay, eta)
    end
    if due > 0 then
      delayed[#delayed + 1] = due
      delayed[#delayed + 1] = id
      if not earliest or due < earliest then earliest = due end
      out[i] = 2
    else
      queued[#queued + 1] = id
      out[i] = 1
    end
  end
end
-- Multi-key commands in chunks (unpack of thousands overflows Lua's stack).
for i = 1, #fields, 1000 do
  redis.call('HSET', KEYS[1], unpack(fields, i, math.min(i + 999, #fields)))
end
for i = 1, #stale, 500 do
  redis.call('DEL', unpack(stale, i, math.min(i + 499, #stale)))
end
if cleanup then results_forget(KEYS[4], gone, #gone) end
if #delayed > 0 then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  for i = 1, #delayed, 500 do
    redis.call('ZADD', KEYS[3], unpack(delayed, i, math.min(i + 499, #delayed)))
  end
  if first[2] == nil or tonumber(first[2]) > earliest then
    redis.call('PUBLISH', ARGV[2], 'd')
  end
end
if #queued > 0 then
  local len = 0
  for i = 1, #queued, 500 do
    len = redis.call('LPUSH', KEYS[2], unpack(queued, i, math.min(i + 499, #queued)))
  end
  if len == #queued then
    redis.call('PUBLISH', ARGV[2], 'p')
  end
end
return out
