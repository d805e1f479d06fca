-- ack: settle a batch of finished tasks, fenced by the batch's lease.
-- docs/PROTOCOL.md#ack
-- KEYS: msg, held, leases, lost, then done:<id> per task
-- ARGV: lease, result_ttl_ms, n, then id, record per task
-- The final record goes into the done list itself (one key per task, which
-- waiters block on); a RETRY or progress record left in result:<id> is
-- shadowed by it and expires on its own, before the done list does.
local lease = ARGV[1] -- "<token> <worker-id>", the fetch's entry in leases
local token = tonumber(string.match(lease, '^%d+'))
-- Each done list expires at now + ttl, written as PEXPIREAT: Redis 7.0
-- rewrites every PEXPIRE into a PEXPIREAT for propagation, new objects per
-- call, and this runs once per task (~0.4 us of the ack's time each).
local t = redis.call('TIME')
local expire_at = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) +
  tonumber(ARGV[2]))
local n = tonumber(ARGV[3])
local out, settled, seen = {}, {}, {}
-- One ZMSCORE per chunk reads the tokens (fences) of the whole batch.
local held = {}
for i = 1, n, 500 do
  local ids = {}
  for k = i, math.min(i + 499, n) do ids[#ids + 1] = ARGV[2 + k * 2] end
  local sc = redis.call('ZMSCORE', KEYS[2], unpack(ids))
  for k = 1, #ids do held[i + k - 1] = tonumber(sc[k]) end
end
for i = 1, n do
  local id = ARGV[2 + i * 2]
  if token and held[i] == token and not seen[id] then
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
  if any_lost then redis.call('HDEL', KEYS[4], unpack(chunk)) end
end
-- The fetch's last task settled: its lease goes (a lease lives exactly as
-- long as some task is held under its token).
if #settled > 0 and redis.call('ZCOUNT', KEYS[2], token, token) == 0 then
  redis.call('ZREM', KEYS[3], lease)
end
return out
