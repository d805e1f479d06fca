-- ack: settle a batch of finished tasks, fenced by the batch's lease.
-- docs/PROTOCOL.md#ack
-- KEYS: msg, held, leases, lost, results, waiting
-- ARGV: lease, result_ttl_ms, n, then id, record per task
-- Returns: the number of tasks settled, then the positions (1-based, in
-- order) of those that were not: usually none, so nothing per task.
-- @include results_put
-- The final records go into the current results generation (no key per
-- task); a RETRY or progress record left in result:<id> is shadowed by it
-- and expires on its own, before the generation does.
local lease = ARGV[1] -- "<token> <worker-id>", the fetch's entry in leases
local token = tonumber(string.match(lease, '^%d+'))
-- The token as ZMSCORE writes it, to compare strings (Lua interns them: one
-- pointer compare) before numbers.
local tokstr = token and string.format('%d', token)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[3])
-- (Counters, not #t: Lua 5.1 finds a table's length by a binary search.)
local settled, at, ns, unsettled, nu = {}, {}, 0, {}, 0
-- One ZMSCORE per chunk reads the tokens (fences) of the whole batch; the
-- ids held under ours are settled.
for i = 1, n, 500 do
  local j = math.min(i + 499, n)
  local ids = {}
  for k = i, j do ids[k - i + 1] = ARGV[2 + k * 2] end
  local sc = redis.call('ZMSCORE', KEYS[2], unpack(ids))
  for k = 1, j - i + 1 do
    local s = sc[k]
    if token and s and (s == tokstr or tonumber(s) == token) then
      ns = ns + 1
      settled[ns] = ids[k]
      at[ns] = i + k - 1
    else
      nu = nu + 1
      unsettled[nu] = i + k - 1
    end
  end
end
-- Their bookkeeping first, in a few multi-key commands: ZREM's count also
-- tells whether an id came twice (it removes it once), the only case that
-- needs a set to settle each id once. Lost counts are nearly always
-- absent: checked once, not per id.
local removed = 0
local any_lost = redis.call('EXISTS', KEYS[4]) == 1
for i = 1, ns, 500 do
  local j = math.min(i + 499, ns)
  removed = removed + redis.call('ZREM', KEYS[2], unpack(settled, i, j))
  redis.call('HDEL', KEYS[1], unpack(settled, i, j))
  if any_lost then redis.call('HDEL', KEYS[4], unpack(settled, i, j)) end
end
if removed < ns then
  local seen, keep, nk = {}, {}, 0
  for k = 1, ns do
    local id = settled[k]
    if not seen[id] then
      seen[id] = true
      nk = nk + 1
      keep[nk] = at[k]
    else
      nu = nu + 1
      unsettled[nu] = at[k]
    end
  end
  at, ns = keep, nk
  table.sort(unsettled)
end
-- Then the final records, in one HSET per chunk, and their waiters.
if ns > 0 then
  local fields = {}
  for k = 1, ns do
    local i = at[k]
    fields[2 * k - 1] = ARGV[2 + i * 2]
    fields[2 * k] = ARGV[3 + i * 2]
  end
  results_put(KEYS[5], KEYS[6], now, tonumber(ARGV[2]), fields, 2 * ns)
end
-- The fetch's last task settled: its lease goes (a lease lives exactly as
-- long as some task is held under its token).
if ns > 0 and redis.call('ZCOUNT', KEYS[2], token, token) == 0 then
  redis.call('ZREM', KEYS[3], lease)
end
local out = {ns}
for k = 1, nu do out[k + 1] = unsettled[k] end
return out
