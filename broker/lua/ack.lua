-- ack: settle a batch of finished tasks, fenced by the batch's token.
-- docs/PROTOCOL.md#ack
-- KEYS: msg, lease, owner, lost, then done:<id> per task
-- ARGV: token, result_ttl_ms, n, then id, record per task
-- The final record goes into the done list itself (one key per task, which
-- waiters block on); a RETRY or progress record left in result:<id> is
-- shadowed by it and expires on its own, before the done list does.
local token = ARGV[1]
-- Each done list expires at now + ttl, written as PEXPIREAT: Redis 7.0
-- rewrites every PEXPIRE into a PEXPIREAT for propagation, new objects per
-- call, and this runs once per task (~0.4 us of the ack's time each).
local t = redis.call('TIME')
local expire_at = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) +
  tonumber(ARGV[2]))
local fence = token .. ' ' -- an owner is "<token> <worker-id>"
local n = tonumber(ARGV[3])
local out, settled, seen = {}, {}, {}
-- One HMGET per chunk reads the owners (fences) of the whole batch.
local owners = {}
for i = 1, n, 500 do
  local ids = {}
  for k = i, math.min(i + 499, n) do ids[#ids + 1] = ARGV[2 + k * 2] end
  local os = redis.call('HMGET', KEYS[3], unpack(ids))
  for k = 1, #ids do owners[i + k - 1] = os[k] end
end
for i = 1, n do
  local id = ARGV[2 + i * 2]
  local o = owners[i]
  if o and not seen[id] and string.find(o, fence, 1, true) == 1 then
    local dk = KEYS[4 + i]
    seen[id] = true
    -- enqueue cleared any old done list: this element is its only one.
    redis.call('RPUSH', dk, ARGV[3 + i * 2])
    redis.call('PEXPIREAT', dk, expire_at)
    settled[#settled + 1] = id
    out[i] = 1
  else
    out[i] = 0
  end
end
-- The bookkeeping of every settled task goes in a few multi-key commands.
-- Lost counts are nearly always absent: checked once, not per id.
local any_lost = redis.call('EXISTS', KEYS[4]) == 1
for i = 1, #settled, 500 do
  local chunk = {unpack(settled, i, math.min(i + 499, #settled))}
  redis.call('HDEL', KEYS[1], unpack(chunk))
  redis.call('ZREM', KEYS[2], unpack(chunk))
  redis.call('HDEL', KEYS[3], unpack(chunk))
  if any_lost then redis.call('HDEL', KEYS[4], unpack(chunk)) end
end
return out
