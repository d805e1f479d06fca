-- state: a task's record and whether it is running or queued.
-- docs/PROTOCOL.md#state
-- KEYS: msg, held, result:<id>, done:<id>
-- ARGV: id
-- The final record (the done list's element) wins over an intermediate one
-- (result:<id>); REFUSED in the done list is a wake-up, not a record.
local r = redis.call('LINDEX', KEYS[4], 0)
if not r or r == 'REFUSED' then r = redis.call('GET', KEYS[3]) end
local running = redis.call('ZSCORE', KEYS[2], ARGV[1]) and 1 or 0
return {r, running, redis.call('HEXISTS', KEYS[1], ARGV[1])}
