-- release(held, leases, lease, id): the fence of a script that settles one
-- task. If id is held under the lease's token (lease = "<token> <worker-id>",
-- docs/PROTOCOL.md#holding-leases-and-fencing), take it out of held, and the
-- lease with it when it was its fetch's last task; true. Otherwise change
-- nothing: false (the caller's hold was lost).
local function release(held, leases, lease, id)
  local token = tonumber(string.match(lease, '^%d+'))
  local s = redis.call('ZSCORE', held, id)
  if not token or not s or tonumber(s) ~= token then return false end
  redis.call('ZREM', held, id)
  -- A lease lives exactly as long as some task is held under its token.
  if redis.call('ZCOUNT', held, token, token) == 0 then
    redis.call('ZREM', leases, lease)
  end
  return true
end
