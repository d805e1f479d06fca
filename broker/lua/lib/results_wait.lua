-- Waiting for final records: see results.lua (docs/PROTOCOL.md#results).

-- Register a waiter for id until now + window_ms (at most a minute) + 5 s
-- of slack (its BLMOVE starts a little later); the set expires after the
-- longest registration there can be.
local function results_register(waiting, now, id, window_ms)
  local w = math.min(window_ms, 60000)
  redis.call('ZADD', waiting, 'GT', now + w + 5000, id)
  redis.call('PEXPIRE', waiting, 65000)
end
