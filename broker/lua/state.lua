-- state: a task's record and whether it is running or queued.
-- docs/PROTOCOL.md#state
-- KEYS: msg, held, result:<id>, results
-- ARGV: id
-- The final record (in a results generation) wins over an intermediate one
-- (result:<id>).
-- @include results
local r = results_find(KEYS[4], ARGV[1]) or redis.call('GET', KEYS[3])
local running = redis.call('ZSCORE', KEYS[2], ARGV[1]) and 1 or 0
return {r, running, redis.call('HEXISTS', KEYS[1], ARGV[1])}
