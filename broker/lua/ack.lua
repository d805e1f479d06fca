-- ack: settle a batch of finished tasks, fenced by the batch's token.
-- docs/PROTOCOL.md#ack
-- KEYS: msg, lease, owner, lost, then result:<id>, done:<id> per task
-- ARGV: token, result_ttl_ms, n, then id, state, record per task
local token = ARGV[1]
local ttl = ARGV[2]
local n = tonumber(ARGV[3])
local out = {}
for i = 1, n do
  local id = ARGV[1 + i * 3]
  local state = ARGV[2 + i * 3]
  local record = ARGV[3 + i * 3]
  local o = redis.call('HGET', KEYS[3], id)
  if o and string.match(o, '^%d+') == token then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    local rk = KEYS[3 + i * 2]
    local dk = KEYS[4 + i * 2]
    redis.call('SET', rk, record, 'PX', ttl)
    redis.call('DEL', dk)
    redis.call('RPUSH', dk, state)
    redis.call('PEXPIRE', dk, ttl)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
