-- state: a task's record and whether it is running or queued.
-- docs/PROTOCOL.md#state
-- KEYS: msg, owner, result:<id>
-- ARGV: id
local r = redis.call('GET', KEYS[3])
return {r, redis.call('HEXISTS', KEYS[2], ARGV[1]), redis.call('HEXISTS', KEYS[1], ARGV[1])}
