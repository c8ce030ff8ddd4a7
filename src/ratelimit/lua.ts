/**
 * The Redis side of the rate limits: two Lua scripts, each one EVALSHA per call, timed by Redis's
 * own clock (TIME), so replicas whose clocks differ still agree on every window.
 *
 * TAKE works on one counter: a HASH holding, per limit (period code c), the window start `w<c>`,
 * the count in that window `n<c>` and, for 1s/1m, the GCRA theoretical arrival time `t<c>` in
 * microseconds. It first settles what the caller brings back (unused tokens of an expired lease,
 * or requests it admitted on its own while Redis was unreachable), then grants up to `want`
 * tokens (all limits at once, or nothing below `min`), and answers what is left and when each
 * window ends. The counter's key carries a hash tag, so the script runs on one Cluster node.
 *
 * REPORT adds this process's usage counts (per application, metric and calendar window) and its
 * heartbeat, and answers the totals and how many processes reported recently. Its keys share the
 * domain's hash tag; the per-window usage keys it derives keep that tag (same Cluster slot).
 */
import { createHash } from 'node:crypto';

export interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/** Calendar windows in UTC, from a time in ms (shared by both scripts). */
const WINDOWS = `
local LEN = {1000, 60000, 3600000, 86400000}
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m
  if mp < 10 then m = mp + 3 else m = mp - 9 end
  if m <= 2 then y = y + 1 end
  return y, m
end
local function window(code, now_ms)
  if code < 4 then
    local len = LEN[code + 1]
    local s = now_ms - (now_ms % len)
    return s, s + len
  end
  local y, m = civil_from_days(math.floor(now_ms / 86400000))
  local s = days_from_civil(y, m, 1) * 86400000
  if m == 12 then y = y + 1; m = 1 else m = m + 1 end
  return s, days_from_civil(y, m, 1) * 86400000
end
local function clock(override)
  if override ~= '0' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function fmt(x) return string.format('%.0f', x) end
`;

/**
 * KEYS[1] counter hash.
 * ARGV: want, min, waitFor, now override (µs, "0" = TIME), m, then per limit: code, requests,
 *   burst (0 = no GCRA), adjust (signed tokens), adjust window start (ms).
 * Returns: granted, wait (ms until `waitFor` tokens, when nothing was granted), then per limit:
 *   window start (ms), remaining, ms until the window ends.
 */
export const TAKE = script(`${WINDOWS}
local key = KEYS[1]
local want = tonumber(ARGV[1])
local min = tonumber(ARGV[2])
local wait_for = tonumber(ARGV[3])
local now_us = clock(ARGV[4])
local now_ms = math.floor(now_us / 1000)
local m = tonumber(ARGV[5])
local names = {}
for i = 1, m do
  local c = ARGV[5 + (i - 1) * 5 + 1]
  names[#names + 1] = 'w' .. c
  names[#names + 1] = 'n' .. c
  names[#names + 1] = 't' .. c
end
local vals = redis.call('HMGET', key, unpack(names))
local st = {}
local grant = want
for i = 1, m do
  local b = 5 + (i - 1) * 5
  local code = tonumber(ARGV[b + 1])
  local req = tonumber(ARGV[b + 2])
  local burst = tonumber(ARGV[b + 3])
  local adj = tonumber(ARGV[b + 4])
  local adj_w = tonumber(ARGV[b + 5])
  local s, e = window(code, now_ms)
  local n = tonumber(vals[i * 3 - 1]) or 0
  if tonumber(vals[i * 3 - 2]) ~= s then n = 0 end
  local tat = tonumber(vals[i * 3]) or 0
  local T, tau = 0, 0
  if burst > 0 then
    T = math.ceil(LEN[code + 1] * 1000 / req)
    tau = burst * T
  end
  if adj ~= 0 then
    if adj_w == s then n = math.max(0, n + adj) end
    if burst > 0 then
      if adj < 0 then
        if tat > now_us then tat = math.max(now_us, tat + adj * T) end
      else
        tat = math.max(tat, now_us) + adj * T
      end
    end
  end
  local avail = req - n
  if burst > 0 then
    local g = math.floor((now_us + tau - math.max(tat, now_us)) / T)
    if g < avail then avail = g end
  end
  if avail < grant then grant = avail end
  st[i] = {code, req, burst, s, e, n, tat, T, tau}
end
if grant < min then grant = 0 end
local out = {grant, 0}
local wait = 0
local fields = {}
local expire = 0
for i = 1, m do
  local x = st[i]
  local code, req, burst, s, e, n, tat, T, tau = x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9]
  if grant == 0 then
    if req - n < wait_for then wait = math.max(wait, e - now_ms) end
    if burst > 0 then
      local g = (math.max(tat, now_us) + wait_for * T - tau - now_us) / 1000
      if g > wait then wait = g end
    end
  else
    n = n + grant
    if burst > 0 then tat = math.max(tat, now_us) + grant * T end
  end
  local rem = req - n
  if burst > 0 then
    local g = math.floor((now_us + tau - math.max(tat, now_us)) / T)
    if g < rem then rem = g end
  end
  if rem < 0 then rem = 0 end
  fields[#fields + 1] = 'w' .. code
  fields[#fields + 1] = fmt(s)
  fields[#fields + 1] = 'n' .. code
  fields[#fields + 1] = fmt(n)
  if burst > 0 then
    fields[#fields + 1] = 't' .. code
    fields[#fields + 1] = fmt(tat)
    if tat / 1000 > expire then expire = tat / 1000 end
  end
  if e > expire then expire = e end
  out[#out + 1] = s
  out[#out + 1] = rem
  out[#out + 1] = e - now_ms
end
out[2] = math.ceil(wait)
redis.call('HSET', key, unpack(fields))
redis.call('PEXPIRE', key, fmt(math.ceil(expire) - now_ms + 1000))
return out
`);

/** Usage windows and how long each is kept after it ends (for dashboards). */
export const USAGE_PERIODS = ['minute', 'hour', 'day', 'month'] as const;
export type UsagePeriod = (typeof USAGE_PERIODS)[number];

/**
 * KEYS[1] usage key prefix (`…{domain}:usage`), KEYS[2] replicas sorted set.
 * ARGV: replica id, heartbeat ttl (ms), now override (µs or "0"), rows r, then r × (field, delta).
 * Returns: now (ms), live replicas, then per row the four totals (minute, hour, day, month),
 *   then the four window starts (ms).
 */
export const REPORT = script(`${WINDOWS}
local now_ms = math.floor(clock(ARGV[3]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], now_ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms - ttl)
redis.call('PEXPIRE', KEYS[2], ttl * 2)
local replicas = redis.call('ZCARD', KEYS[2])
local codes = {1, 2, 3, 4}
local names = {'minute', 'hour', 'day', 'month'}
local keep = {3600000, 172800000, 3456000000, 34560000000}
local keys, starts, ends = {}, {}, {}
for p = 1, 4 do
  local s, e = window(codes[p], now_ms)
  keys[p] = KEYS[1] .. ':' .. names[p] .. ':' .. fmt(s)
  starts[p] = s
  ends[p] = e
end
local r = tonumber(ARGV[4])
local out = {now_ms, replicas}
for i = 1, r do
  local field = ARGV[4 + (i - 1) * 2 + 1]
  local delta = tonumber(ARGV[4 + (i - 1) * 2 + 2])
  for p = 1, 4 do
    out[#out + 1] = redis.call('HINCRBY', keys[p], field, delta)
  end
end
if r > 0 then
  for p = 1, 4 do redis.call('PEXPIRE', keys[p], fmt(ends[p] - now_ms + keep[p])) end
end
for p = 1, 4 do out[#out + 1] = starts[p] end
return out
`);
