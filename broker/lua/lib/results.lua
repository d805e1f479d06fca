-- Final records (docs/PROTOCOL.md#results). They live in generation hashes,
-- <idx>:<start> (id -> record), listed in the index <idx> = <base>results
-- (start -> the ms when the generation retires): one hash field per task
-- instead of a key with its own expiry, which cost Redis as much as the rest
-- of the ack together. A generation spans an eighth of the result TTL
-- (1 s .. 1 h) and retires ttl after its end, so a record is kept at least
-- ttl, and is gone at most three spans after that. The waiters of
-- a task (<base>waiting: id -> deadline) get its record pushed to
-- <base>done:<id>, where they block. Every key here shares the queue's hash
-- tag with idx: one cluster slot.

-- The generations listed in idx (their starts), the latest to retire first.
local function results_gens(idx)
  local g = redis.call('ZRANGE', idx, 0, -1)
  local out, n = {}, #g
  for i = 1, n do out[i] = g[n + 1 - i] end
  return out
end

-- The final record of id, or nil.
local function results_find(idx, id)
  for _, g in ipairs(results_gens(idx)) do
    local r = redis.call('HGET', idx .. ':' .. g, id)
    if r then return r end
  end
  return nil
end

-- Drop the final records of ids[1..n] (an id chosen by a user, used again).
-- A generation this empties (Redis deletes an empty hash) leaves the index
-- too, so one written again later counts as new and gets its expiry.
local function results_forget(idx, ids, n)
  if n == 0 then return end
  for _, g in ipairs(results_gens(idx)) do
    local k = idx .. ':' .. g
    for i = 1, n, 500 do
      redis.call('HDEL', k, unpack(ids, i, math.min(i + 499, n)))
    end
    if redis.call('EXISTS', k) == 0 then redis.call('ZREM', idx, g) end
  end
end
