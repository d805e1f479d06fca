-- Writing final records: see results.lua (docs/PROTOCOL.md#results).

-- The length of a generation for records kept ttl ms.
local function results_span(ttl)
  local span = math.floor(ttl / 8)
  if span < 1000 then return 1000 end
  if span > 3600000 then return 3600000 end
  return span
end

-- Store nf / 2 final records (fields: id, record, id, record, ...) finished
-- at now, to be kept ttl ms; then wake their registered waiters.
local function results_put(idx, waiting, now, ttl, fields, nf)
  local span = results_span(ttl)
  local start = now - now % span
  local key = idx .. ':' .. start
  for i = 1, nf, 1000 do
    redis.call('HSET', key, unpack(fields, i, math.min(i + 999, nf)))
  end
  local retire = start + span + ttl
  -- Only a new generation (or a later retirement: a longer TTL from another
  -- worker) needs more: its expiry, and the retirement of those whose time
  -- has come, which UNLINK frees off Redis's main thread. That runs at least
  -- once a span while tasks finish, so a generation is unlinked at most a
  -- span after it retires; the hash and the index expire a span after that
  -- (an expiry frees on the main thread), for when no worker runs. Waiter
  -- registrations past their deadline are shed then too.
  if redis.call('ZADD', idx, 'GT', 'CH', retire, start) == 1 then
    redis.call('PEXPIREAT', key, retire + 2 * span)
    if redis.call('PEXPIRETIME', idx) < retire + 2 * span then
      redis.call('PEXPIREAT', idx, retire + 2 * span)
    end
    local old = redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'LIMIT', 0, 16)
    for i = 1, #old do redis.call('UNLINK', idx .. ':' .. old[i]) end
    if #old > 0 then redis.call('ZREM', idx, unpack(old)) end
    redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)
  end
  -- The registered waiters: each one's record goes to its done list, for a
  -- minute (a waiter blocks right after registering; the record itself
  -- stays in its generation), and the registration goes. One task (a
  -- waited round trip) takes one read; a batch first asks whether anyone
  -- waits at all, and sheds dead registrations from a set past 1,000.
  local base = string.sub(idx, 1, -8) -- idx is <base>results
  if nf == 2 then
    local sc = redis.call('ZSCORE', waiting, fields[1])
    if sc then
      if tonumber(sc) >= now then
        redis.call('RPUSH', base .. 'done:' .. fields[1], fields[2])
        redis.call('PEXPIRE', base .. 'done:' .. fields[1], 60000)
      end
      redis.call('ZREM', waiting, fields[1])
    end
    return
  end
  local nw = redis.call('ZCARD', waiting)
  if nw == 0 then return end
  if nw > 1000 then redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now) end
  for i = 1, nf, 1000 do
    local j = math.min(i + 999, nf)
    local ids, n, gone, ng = {}, 0, {}, 0
    for k = i, j, 2 do
      n = n + 1
      ids[n] = fields[k]
    end
    local sc = redis.call('ZMSCORE', waiting, unpack(ids))
    for k = 1, n do
      if sc[k] then
        if tonumber(sc[k]) >= now then
          local dk = base .. 'done:' .. ids[k]
          redis.call('RPUSH', dk, fields[i + 2 * k - 1])
          redis.call('PEXPIRE', dk, 60000)
        end
        ng = ng + 1
        gone[ng] = ids[k]
      end
    end
    if ng > 0 then redis.call('ZREM', waiting, unpack(gone)) end
  end
end
