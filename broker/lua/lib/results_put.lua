-- Writing final records: see results.lua (docs/PROTOCOL.md#results).

-- The length of a generation for records kept ttl ms.
local function results_span(ttl)
  local span = math.floor(ttl / 8)
  if span < 1000 then return 1000 end
  if span > 3600000 then return 3600000 end
  return span
end

-- Store nf / 2 final records (fields: id, record, id, record, ...) finished
-- at now, to be kept ttl ms; retire the generations whose time has come.
local function results_put(idx, now, ttl, fields, nf)
  local span = results_span(ttl)
  local start = now - now % span
  local key = idx .. ':' .. start
  for i = 1, nf, 1000 do
    redis.call('HSET', key, unpack(fields, i, math.min(i + 999, nf)))
  end
  -- A new generation, a later retirement (a longer TTL from another
  -- worker) or a hash made again (results_forget emptied it): the hash and
  -- the index expire a span after the retirement, a backstop for when no
  -- script runs to retire them (UNLINK frees off the main thread; an expiry
  -- frees on it).
  local retire = start + span + ttl
  if redis.call('ZADD', idx, 'GT', 'CH', retire, start) == 1 or
      redis.call('PTTL', key) == -1 then
    retire = tonumber(redis.call('ZSCORE', idx, start))
    redis.call('PEXPIREAT', key, retire + span)
    if redis.call('PEXPIRETIME', idx) < retire + span then
      redis.call('PEXPIREAT', idx, retire + span)
    end
  end
  local old = redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'LIMIT', 0, 16)
  for i = 1, #old do redis.call('UNLINK', idx .. ':' .. old[i]) end
  if #old > 0 then redis.call('ZREM', idx, unpack(old)) end
end

-- Wake the registered waiters of the tasks in fields (as for results_put):
-- each one's record goes to its done list, for a minute (a waiter blocks
-- right after registering; the record itself stays in its generation).
local function results_notify(idx, waiting, now, fields, nf)
  if redis.call('EXISTS', waiting) == 0 then return end
  redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)
  local base = string.sub(idx, 1, -8) -- idx is <base>results
  for i = 1, nf, 1000 do
    local j = math.min(i + 999, nf)
    local ids, n = {}, 0
    for k = i, j, 2 do
      n = n + 1
      ids[n] = fields[k]
    end
    local sc = redis.call('ZMSCORE', waiting, unpack(ids))
    for k = 1, n do
      if sc[k] then
        local dk = base .. 'done:' .. ids[k]
        redis.call('RPUSH', dk, fields[i + 2 * k - 1])
        redis.call('PEXPIRE', dk, 60000)
        redis.call('ZREM', waiting, ids[k])
      end
    end
  end
end
