-- due_at(now, delay, eta): when a task submitted at now (ms, Redis TIME) with
-- delay_ms and eta_ms is due: delay after now, or eta if that is later; 0
-- when that is not in the future (it is queued at once).
-- docs/PROTOCOL.md#enqueue
local function due_at(now, delay, eta)
  local due = now + delay
  if eta > due then due = eta end
  if due <= now then return 0 end
  return due
end
