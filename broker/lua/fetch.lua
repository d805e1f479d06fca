-- fetch: atomically move due delayed ids to pending, then lease up to N tasks
-- to one worker. docs/PROTOCOL.md#fetch
-- KEYS: pending, msg, held, leases, fence, delayed, lost, dead, deadmsg
-- ARGV: worker_id, max_tasks, lease_ms, promote_max
-- Returns: token, next_due_ms (-1: none), now_ms, fields per task (2 or 3),
-- then id, message and, when fields is 3, lost per task
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The earliest delayed task first: when nothing is due (the usual case) that
-- one read is all the promotion costs.
local first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
if first[2] ~= nil and tonumber(first[2]) <= now then
  local due = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
  -- Move in chunks: unpack() of thousands of values overflows Lua's stack, and
  -- a script that fails half-way is not rolled back. Remove first, then push,
  -- so a failure can never leave an id in both places.
  for i = 1, #due, 500 do
    local chunk = {unpack(due, i, math.min(i + 499, #due))}
    redis.call('ZREM', KEYS[6], unpack(chunk))
    redis.call('LPUSH', KEYS[1], unpack(chunk))
  end
  first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
end
local next_due = -1
if first[2] ~= nil then next_due = tonumber(first[2]) end
local max = tonumber(ARGV[2])
local out = {0, next_due, now, 2}
if max <= 0 then return out end
local token = redis.call('INCR', KEYS[5])
out[1] = token
-- The whole batch is held under this fetch's token (held: id -> token) and
-- shares one lease (leases: "<token> <worker_id>" -> deadline), written
-- once at the end: per task, one sorted-set entry is all the bookkeeping.
-- As a string once: a Lua number passed to redis.call is formatted per use.
local tokstr = tostring(token)
local got = 0
-- The lost counts are nearly always absent: one EXISTS per call instead of
-- an HMGET whose every argument Redis must convert.
local any_lost = redis.call('EXISTS', KEYS[7]) == 1
-- Nor are they sent then: a zero per task costs the reply an element.
if any_lost then out[4] = 3 end
-- Lease the candidates of one chunk (ids with a message, cmsg their
-- messages) and append them to out. ZADD NX both holds the free ones and, by
-- its count, says whether every candidate was new: the usual case, and then
-- none can be a second copy either (a copy taken earlier in this call is
-- held under our token, and two copies in one ZADD count once). Otherwise
-- the scores tell: ours carry this fetch's fresh token, and a second copy of
-- an id leased in this call is dropped.
local function lease(cand, cmsg, zargs)
  local take = cand
  if redis.call('ZADD', KEYS[3], 'NX', unpack(zargs)) < #cand then
    local mine = {}
    for i = 5, #out, out[4] do mine[out[i]] = true end
    local sc = redis.call('ZMSCORE', KEYS[3], unpack(cand))
    local keep, kmsg = {}, {}
    for k, id in ipairs(cand) do
      if tonumber(sc[k]) == token and not mine[id] then
        mine[id] = true
        keep[#keep + 1] = id
        kmsg[#kmsg + 1] = cmsg[k]
      end
    end
    take, cmsg = keep, kmsg
  end
  local nt = #take
  if nt == 0 then return 0 end
  local lost = any_lost and redis.call('HMGET', KEYS[7], unpack(take)) or {}
  local o = #out
  if any_lost then
    for k = 1, nt do
      out[o + 1] = take[k]
      out[o + 2] = cmsg[k]
      out[o + 3] = tonumber(lost[k] or 0)
      o = o + 3
    end
  else
    for k = 1, nt do
      out[o + 1] = take[k]
      out[o + 2] = cmsg[k]
      o = o + 2
    end
  end
  return nt
end
-- Skipped ids (revoked: no message; already held: a second copy of an id that
-- was revoked or buried and then queued again; not an id at all) do not count
-- against max, but the rounds are bounded so one call cannot run away on a
-- list of dangling ids.
local rounds = 4
while got < max and rounds > 0 do
  rounds = rounds - 1
  local want = max - got
  local ids = redis.call('RPOP', KEYS[1], want)
  if not ids then break end
  -- (Counters, not #t: Lua 5.1 finds a table's length by a binary search.)
  local valid, nv = {}, 0
  for _, id in ipairs(ids) do
    if #id > 64 or not string.match(id, '^[0-9A-Za-z_-]+$') then
      -- Not a task id (written by something that is not a taskq client): no
      -- key can be built from it safely, so it goes to the dead-letter set
      -- here, under a printable name, with its bytes in hex.
      local hex = string.gsub(string.sub(id, 1, 256), '.', function(c)
        return string.format('%02x', string.byte(c)) end)
      local name = 'invalid-' .. string.sub(redis.sha1hex(id), 1, 16)
      local m = redis.call('HGET', KEYS[2], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('ZADD', KEYS[8], now, name)
      redis.call('HSET', KEYS[9], name, cjson.encode({id = name, at_ms = now,
        reason = 'malformed message: invalid task id in the queue (hex: ' .. hex .. ')',
        message_bytes = m and #m or 0}))
    else
      nv = nv + 1
      valid[nv] = id
    end
  end
  -- Commands that take many ids at once get them in chunks (see above).
  for i = 1, nv, 500 do
    local j = math.min(i + 499, nv)
    local ms = redis.call('HMGET', KEYS[2], unpack(valid, i, j))
    local cand, cmsg, zargs, nc = {}, {}, {}, 0
    for k = i, j do
      local m = ms[k - i + 1]
      if m then
        nc = nc + 1
        cand[nc] = valid[k]
        cmsg[nc] = m
        zargs[2 * nc - 1] = tokstr
        zargs[2 * nc] = valid[k]
      end
    end
    if nc > 0 then got = got + lease(cand, cmsg, zargs) end
  end
  if #ids < want then break end -- the list ran out
end
if got > 0 then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), tokstr .. ' ' .. ARGV[1])
end
return out
