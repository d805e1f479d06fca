-- progress: store a STARTED record with the task's progress, only while the
-- caller still holds the task (fenced). docs/PROTOCOL.md#progress
-- KEYS: owner, result:<id>
-- ARGV: id, token, record, result_ttl_ms
local o = redis.call('HGET', KEYS[1], ARGV[1])
if not o or string.match(o, '^%d+') ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 1
