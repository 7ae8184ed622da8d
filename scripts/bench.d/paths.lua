-- wrk script for scripts/bench. What each request is comes from the
-- environment: BENCH_MODE (see request()), BENCH_BASE/BENCH_N (the users
-- u<BASE>..u<BASE+N-1> it rotates through), BENCH_TAG (makes new session ids
-- and ceiling keys unique per run), BENCH_SEQUENTIAL=1 (walk the users in
-- order instead of at random, for the runs that create sessions),
-- BENCH_STOP_AFTER (each thread sends exactly that many requests, then stops
-- once they are answered, and appends a line to BENCH_DONE_FILE if set: wrk
-- itself runs until -d or SIGINT, which prints its summary) and BENCH_DELAY_MS (each connection waits that long
-- before each request: a paced client, rate ≈ connections × 1000 / (delay +
-- latency)). done() prints one machine-readable line.
--
-- BENCH_MODE=rtmp_cycle is an admission client that also ends its sessions:
-- nginx-rtmp `play` of a new client id, then `play_done` of the client id it
-- started BENCH_HOLD (default 50) plays earlier, alternately, so each thread
-- keeps about BENCH_HOLD sessions open. Run it with as many connections as
-- threads (-tN -cN): a thread's requests then go one after the other on its
-- one connection, so it knows which answer is a play's, and times the plays
-- itself (wrk's own latency mixes plays and stops). Its line reports the
-- plays: rps = allowed plays per second, p50/p99 of plays, non2xx = plays
-- refused plus stops not answered 2xx.
local mode = os.getenv("BENCH_MODE") or "noop"
local base = tonumber(os.getenv("BENCH_BASE") or "0")
local n = tonumber(os.getenv("BENCH_N") or "10000")
local tag = os.getenv("BENCH_TAG") or "x"
local sequential = os.getenv("BENCH_SEQUENTIAL") == "1"
local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "0")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local hold = tonumber(os.getenv("BENCH_HOLD") or "50")
local done_file = os.getenv("BENCH_DONE_FILE")
local ua = "bench-player/1.0"

local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local counter, answers, reserved = 0, 0, 0
-- BENCH_LINKS: a file of signed links, line i + 1 for user u(BASE + i) (fl_link).
links = {}
function init(args)
  math.randomseed(os.time() * 97 + (id or 0) * 7919)
  local file = mode == "fl_link" and os.getenv("BENCH_LINKS") and io.open(os.getenv("BENCH_LINKS"))
  if file then
    for line in file:lines() do links[#links + 1] = (line:gsub("^pglink=", "")) end
    file:close()
  end
end

-- Viewer i's client address: 10.x.y.z, distinct for 0..~13M.
local function ip(i)
  return string.format("10.%d.%d.%d", 1 + math.floor(i / 65536) % 250, math.floor(i / 256) % 256, i % 256)
end

local function flussonic(u, session, kind)
  return wrk.format("GET", "/hook/flussonic?name=news&ip=" .. ip(u) .. "&token=tk" .. u
    .. "&session_id=" .. session .. "&request_type=" .. kind)
end

local function forward_auth(uri, u)
  return wrk.format("GET", "/hook/forward-auth",
    { ["X-Original-URI"] = uri, ["X-Real-IP"] = ip(u), ["User-Agent"] = ua })
end

local function rtmp(call, u, clientid)
  return wrk.format("GET", "/hook/nginx-rtmp?call=" .. call .. "&app=adm&name=news&addr=" .. ip(u)
    .. "&clientid=" .. clientid .. "&flashver=bench-rtmp&token=tk" .. u)
end

-- BENCH_STOP_AFTER: a request is reserved before it is built (wrk asks
-- delay() before every request, the first one included), so no connection
-- sends one past the quota; the others wait (an hour) until the thread stops.
if stop_after > 0 or delay_ms > 0 then
  function delay()
    if stop_after > 0 then
      if reserved >= stop_after then return 3600000 end
      reserved = reserved + 1
    end
    return delay_ms
  end
end

-- rtmp_cycle state (one connection per thread: strictly request, answer, …).
local ffi = nil
local now_us = nil
if mode == "rtmp_cycle" then
  ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock, bench_timespec *tp);
  ]]
  local ts = ffi.new("bench_timespec")
  now_us = function()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
  end
end
-- Globals, as the main state's done() reads them with thread:get().
cycle = { plays = 0, stops = 0, started = 0, refused = 0, stop_failed = 0 }
hist = {}                -- play latency: key < 10000: 10 µs buckets; above: 1 ms buckets past 100 ms
local sent_at, last_kind = 0, nil
local open = {}          -- ring of the client ids started, with their users
local play_number = 0
local want_stop = false

local function bucket(us)
  if us < 100000 then return math.floor(us / 10) end
  return 10000 + math.floor((us - 100000) / 1000)
end
local function bucket_ms(b)
  if b < 10000 then return (b + 0.5) / 100 end
  return 100 + (b - 10000) + 0.5
end

local function cycle_request()
  -- The slot the next play takes holds the play started `hold` plays ago.
  local slot = (play_number + 1) % hold
  if want_stop and open[slot] then
    local o = open[slot]
    open[slot] = nil
    last_kind = "stop"
    return rtmp("play_done", o.u, o.id)
  end
  play_number = play_number + 1
  local u = base + math.random(0, n - 1)
  local cid = tag .. "-" .. (id or 0) .. "-" .. play_number
  open[play_number % hold] = { u = u, id = cid }
  last_kind = "play"
  return rtmp("play", u, cid)
end

function request()
  counter = counter + 1
  if mode == "rtmp_cycle" then
    sent_at = now_us()
    return cycle_request()
  end
  local i
  if sequential then i = (counter - 1) % n else i = math.random(0, n - 1) end
  local u = base + i
  if mode == "noop" then
    return wrk.format("GET", "/noop")
  elseif mode == "admin_get" then   -- one admin API path (BENCH_PATH) as BENCH_AUTH (Basic)
    return wrk.format("GET", os.getenv("BENCH_PATH"), { ["Authorization"] = "Basic " .. os.getenv("BENCH_AUTH") })
  elseif mode == "upsert" then
    return wrk.format("GET", "/upsert?key=ceiling-" .. u)
  elseif mode == "insert" then      -- one new row per request: the key must be new
    return wrk.format("GET", "/insert?key=ceiling-i" .. tag .. "-" .. (id or 0) .. "-" .. counter)
  elseif mode == "fl_new" then      -- Flussonic new_session, one stable id per user
    return flussonic(u, "f" .. u, "new_session")
  elseif mode == "fl_refresh" then  -- Flussonic update_session of that session
    return flussonic(u, "f" .. u, "update_session")
  elseif mode == "fl_limit" then    -- a new session id every request (admissions; refusals at a limit)
    return flussonic(u, "n" .. tag .. "-" .. (id or 0) .. "-" .. counter, "new_session")
  elseif mode == "fl_link" then     -- the same, a signed link of the user in the client's query
    return wrk.format("GET", "/hook/flussonic?name=news&ip=" .. ip(u) .. "&qs=pglink%3D" .. links[i + 1]
      .. "&session_id=n" .. tag .. "-" .. (id or 0) .. "-" .. counter .. "&request_type=new_session")
  elseif mode == "fa_token" then    -- forward-auth playlist with the token
    return forward_auth("/live/news/index.m3u8?token=tk" .. u, u)
  elseif mode == "fa_segment" then  -- forward-auth segment, no credentials
    return forward_auth("/live/news/seg" .. counter .. ".ts", u)
  elseif mode == "fa_password" then -- forward-auth playlist with auth=login:password
    return forward_auth("/live/news/index.m3u8?auth=pw" .. i .. ":secret-pw" .. i, u)
  end
  error("unknown BENCH_MODE " .. mode)
end

function response(status, headers, body)
  answers = answers + 1
  if mode == "rtmp_cycle" then
    local ok = status >= 200 and status < 300
    if last_kind == "play" then
      local b = bucket(now_us() - sent_at)
      hist[b] = (hist[b] or 0) + 1
      cycle.plays = cycle.plays + 1
      if ok then cycle.started = cycle.started + 1 else cycle.refused = cycle.refused + 1 end
      -- The next request stops the one started `hold` plays ago (if any).
      want_stop = true
    else
      cycle.stops = cycle.stops + 1
      if not ok then cycle.stop_failed = cycle.stop_failed + 1 end
      want_stop = false
    end
  end
  if stop_after > 0 and answers == stop_after then
    if done_file then
      local f = io.open(done_file, "a")
      f:write("thread ", id or 0, " answered ", answers, "\n")
      f:close()
    end
    wrk.thread:stop()
  end
end

local function cycle_done(summary)
  local seconds = summary.duration / 1e6
  local merged, total = {}, { plays = 0, stops = 0, started = 0, refused = 0, stop_failed = 0 }
  for _, t in ipairs(threads) do
    local h = t:get("hist") or {}
    for b, c in pairs(h) do merged[b] = (merged[b] or 0) + c end
    local c = t:get("cycle") or {}
    for k, _ in pairs(total) do total[k] = total[k] + (c[k] or 0) end
  end
  local keys = {}
  for b, _ in pairs(merged) do table.insert(keys, b) end
  table.sort(keys)
  local function pct(p)
    local want, seen = total.plays * p / 100, 0
    for _, b in ipairs(keys) do
      seen = seen + merged[b]
      if seen >= want then return bucket_ms(b) end
    end
    return 0
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d sockerr=%d seconds=%.2f stops=%d refused=%d stop_failed=%d\n",
    total.started / seconds, pct(50), pct(99), total.plays, total.refused + total.stop_failed,
    e.connect + e.read + e.write + e.timeout, seconds, total.stops, total.refused, total.stop_failed))
end

function done(summary, latency, requests)
  if mode == "rtmp_cycle" then return cycle_done(summary) end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("BENCH rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d sockerr=%d seconds=%.2f\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, seconds))
end
