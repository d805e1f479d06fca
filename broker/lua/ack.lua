-- ack: settle a batch of finished tasks, fenced by the batch's token.
-- docs/PROTOCOL.md#ack
-- KEYS: msg, lease, owner, lost, then result:<id>, done:<id> per task
-- ARGV: token, result_ttl_ms, n, then id, state, record per task
local token = ARGV[1]
local ttl = ARGV[2]
local n = tonumber(ARGV[3])
local out, settled = {}, {}
for i = 1, n do
  local id = ARGV[1 + i * 3]
  local o = redis.call('HGET', KEYS[3], id)
  if o and string.match(o, '^%d+') == token then
    local dk = KEYS[4 + i * 2]
    redis.call('SET', KEYS[3 + i * 2], ARGV[3 + i * 3], 'PX', ttl)
    -- enqueue cleared any old done list: this element is its only one.
    redis.call('RPUSH', dk, ARGV[2 + i * 3])
    redis.call('PEXPIRE', dk, ttl)
    settled[#settled + 1] = id
    out[i] = 1
  else
    out[i] = 0
  end
end
-- The bookkeeping of every settled task goes in a few multi-key commands.
for i = 1, #settled, 500 do
  local chunk = {unpack(settled, i, math.min(i + 499, #settled))}
  redis.call('HDEL', KEYS[1], unpack(chunk))
  redis.call('ZREM', KEYS[2], unpack(chunk))
  redis.call('HDEL', KEYS[3], unpack(chunk))
  redis.call('HDEL', KEYS[4], unpack(chunk))
end
return out
