-- bury: move a task to the dead-letter set with a reason (fenced unless the
-- message was never owned). docs/PROTOCOL.md#bury
-- KEYS: msg, held, leases, lost, dead, deadmsg, result:<id>, results, waiting
-- ARGV: id, lease ('' if never held), reason, record, result_ttl_ms, dead_max,
--       dead_max_age_ms, dead_entry_json
-- @include release
-- @include results_put
local id = ARGV[1]
if ARGV[2] ~= '' and not release(KEYS[2], KEYS[3], ARGV[2], id) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HDEL', KEYS[1], id)
redis.call('HDEL', KEYS[4], id)
redis.call('ZADD', KEYS[5], now, id)
redis.call('HSET', KEYS[6], id, ARGV[8])
-- Cap by age, then by count; the hash follows the zset.
local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now - tonumber(ARGV[7]), 'LIMIT', 0, 1000)
local excess = redis.call('ZCARD', KEYS[5]) - #old - tonumber(ARGV[6])
if excess > 0 then
  local more = redis.call('ZRANGE', KEYS[5], #old, #old + excess - 1)
  for i = 1, #more do old[#old + 1] = more[i] end
end
for i = 1, #old, 500 do
  local chunk = {unpack(old, i, math.min(i + 499, #old))}
  redis.call('ZREM', KEYS[5], unpack(chunk))
  redis.call('HDEL', KEYS[6], unpack(chunk))
end
-- The final record goes to the results; an older intermediate record goes.
redis.call('DEL', KEYS[7])
local fields = {id, ARGV[4]}
results_put(KEYS[8], KEYS[9], now, tonumber(ARGV[5]), fields, 2)
return 1
