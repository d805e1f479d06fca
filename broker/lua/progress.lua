-- progress: store a STARTED record with the task's progress, only while the
-- caller still holds the task (fenced). docs/PROTOCOL.md#progress
-- KEYS: held, result:<id>
-- ARGV: id, token, record, result_ttl_ms
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 1
