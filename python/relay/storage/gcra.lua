-- One rate-limit decision in Redis: every charge of a request, atomically (one EVALSHA).
--
-- KEYS[i]     the cell of charge i (a string holding its TAT, seconds since relay's epoch)
-- ARGV[1]     "take" (all charges or none) or "adjust" (give back or charge over)
-- ARGV[2]     now in seconds since relay's epoch; "" reads Redis' own clock (TIME), so that
--             replicas with skewed clocks agree. A fixed now is for tests only: Redis expires
--             keys by its own clock, so their cells are written without an expiry.
-- ARGV[3]     relay's epoch in Unix seconds (small times keep GCRA's rounding allowance small)
-- ARGV[3+3i-2 .. 3+3i]   emission interval, burst, cost of charge i
--
-- take replies {allowed (1/0), retry_after, remaining_1, reset_after_1, remaining_2, ...}
-- and adjust replies {}; numbers are strings ("%.17g": Lua numbers would be cut to integers).
-- Every key written expires when its cell is empty again (PX); an empty cell is deleted.
--
-- step() is relay._native.gcra (rust/src/gcra.rs) line for line, in the same order of
-- floating-point operations, so that both compute bit-identical results.

local inf = math.huge

local function step(tat, now, t, burst, cost)
  local tau = t * burst
  local increment = cost * t
  local eps = 1e-9 + 1e-12 * (math.abs(now) + math.abs(tat) + tau)
  local ahead = math.max(tat - now, 0)
  local new_tat = math.max(tat, now) + increment
  local function remaining_at(ahead_after)
    local r = math.floor((tau - ahead_after + eps) / t)
    if r > 0 then return r end
    return 0
  end
  if increment > tau + eps then
    return false, tat, inf, ahead, remaining_at(ahead)
  end
  local new_ahead = ahead + increment
  local wait = new_ahead - tau
  if wait > eps then
    return false, tat, wait, ahead, remaining_at(ahead)
  end
  return true, new_tat, 0, math.max(new_tat - now, 0), remaining_at(new_ahead)
end

local function num(x)
  return string.format("%.17g", x)
end

local now
local expires = ARGV[2] == ""
if expires then
  local time = redis.call("TIME")
  now = (tonumber(time[1]) - tonumber(ARGV[3])) + tonumber(time[2]) / 1000000
else
  now = tonumber(ARGV[2])
end

-- Read every cell once; an absent cell (or one expired) is empty: its TAT is now.
local stored, tats = {}, {}
for i, key in ipairs(KEYS) do
  if stored[key] == nil then
    stored[key] = tonumber(redis.call("GET", key)) or false
  end
end
local function current(key)
  local tat = tats[key]
  if tat == nil then tat = stored[key] or now end
  return tat
end

local function write(key, tat)
  local ttl = math.ceil((tat - now) * 1000)
  if ttl >= 1 then
    if expires then
      redis.call("SET", key, num(tat), "PX", ttl)
    else
      redis.call("SET", key, num(tat))
    end
  elseif stored[key] then
    redis.call("DEL", key)
  end
end

local n = #KEYS
if ARGV[1] == "take" then
  -- Charges apply in order (a cell charged twice sees its first charge), written only if
  -- every one of them fits.
  local allowed, retry_after = true, 0
  local cells = {}
  for i = 1, n do
    local key, base = KEYS[i], 3 + 3 * (i - 1)
    local t, burst, cost = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
    local ok, tat, wait, reset, remaining = step(current(key), now, t, burst, cost)
    if ok then
      if cost > 0 then tats[key] = tat end
    else
      allowed = false
      if wait > retry_after then retry_after = wait end
    end
    cells[i] = {remaining, reset}
  end
  if allowed then
    for key, tat in pairs(tats) do write(key, tat) end
  else
    -- Nothing was charged: each cell reports its state as stored (a peek at cost 0).
    for i = 1, n do
      local base = 3 + 3 * (i - 1)
      local t, burst = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
      local _, _, _, reset, remaining = step(stored[KEYS[i]] or now, now, t, burst, 0)
      cells[i] = {remaining, reset}
    end
  end
  local reply = {allowed and 1 or 0, num(retry_after)}
  for i = 1, n do
    reply[#reply + 1] = num(cells[i][1])
    reply[#reply + 1] = num(cells[i][2])
  end
  return reply
end

if ARGV[1] == "adjust" then
  -- A negative cost gives back (never below empty: TAT >= now); a positive one charges over
  -- (the TAT may pass now + tau: later takes wait until the cell has drained).
  for i = 1, n do
    local key, base = KEYS[i], 3 + 3 * (i - 1)
    local t, cost = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 3])
    local tat = current(key)
    if cost > 0 or tats[key] ~= nil or stored[key] then
      tats[key] = math.max(math.max(tat, now) + cost * t, now)
    end
  end
  for key, tat in pairs(tats) do write(key, tat) end
  return {}
end

return redis.error_reply("gcra.lua: unknown operation " .. tostring(ARGV[1]))
