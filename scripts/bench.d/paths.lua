-- wrk script for scripts/bench. What each request is comes from the
-- environment: BENCH_MODE (see request()), BENCH_BASE/BENCH_N (the users
-- u<BASE>..u<BASE+N-1> it rotates through), BENCH_TAG (makes new session ids
-- unique per run), BENCH_SEQUENTIAL=1 (walk the users in order instead of at
-- random, for the runs that create sessions) and BENCH_STOP_AFTER (stop the
-- thread after that many answers). done() prints one machine-readable line.
local mode = os.getenv("BENCH_MODE") or "noop"
local base = tonumber(os.getenv("BENCH_BASE") or "0")
local n = tonumber(os.getenv("BENCH_N") or "10000")
local tag = os.getenv("BENCH_TAG") or "x"
local sequential = os.getenv("BENCH_SEQUENTIAL") == "1"
local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "0")
local ua = "bench-player/1.0"

local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local counter, answers = 0, 0
function init(args)
  math.randomseed(os.time() * 97 + (id or 0) * 7919)
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

function request()
  counter = counter + 1
  local i
  if sequential then i = (counter - 1) % n else i = math.random(0, n - 1) end
  local u = base + i
  if mode == "noop" then
    return wrk.format("GET", "/noop")
  elseif mode == "upsert" then
    return wrk.format("GET", "/upsert?key=ceiling-" .. u)
  elseif mode == "fl_new" then      -- Flussonic new_session, one stable id per user
    return flussonic(u, "f" .. u, "new_session")
  elseif mode == "fl_refresh" then  -- Flussonic update_session of that session
    return flussonic(u, "f" .. u, "update_session")
  elseif mode == "fl_limit" then    -- a new session id every request (users with a limit)
    return flussonic(u, "n" .. tag .. "-" .. (id or 0) .. "-" .. counter, "new_session")
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
  if stop_after > 0 and answers >= stop_after then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("BENCH rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d sockerr=%d\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
