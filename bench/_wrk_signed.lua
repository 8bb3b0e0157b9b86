-- wrk script for bench/api_throughput.py: replays pre-signed requests, one connection per thread,
-- and records every answer's statusCode, completion time and latency.
--
--   wrk -t N -c N -d SECONDS -s bench/_wrk_signed.lua URL -- PREFIX MODE N REFUSED PAUSE_MS
--
-- PREFIX-<i>.req (i = 1..N) holds thread i's requests, complete HTTP/1.1 requests built and
-- signed in Python (the Sign depends on a timestamp, so it cannot be made here), each preceded by
-- its length in bytes and a newline. MODE "cycle" replays them round and round; "once" sends each
-- one once and then stops the thread, so that no invite is ever sent twice, except that a request
-- answered with the statusCode REFUSED (the overload answer, given before anything is done) goes
-- to the back of the thread's queue to be sent again. After a REFUSED answer the connection waits
-- PAUSE_MS before its next request (0: at once), as a client backing off would.
--
-- wrk itself runs for its whole -d even when every thread has stopped, so a thread that has sent
-- all its requests ("once") also writes PREFIX-<i>.finished, and the caller ends wrk with SIGINT
-- (which is also how it ends a timed round on time); done() still runs then.
--
-- With one connection per thread, request() and response() alternate, so the time between them
-- is one request's latency. Times are CLOCK_MONOTONIC seconds (Python's time.monotonic()).
-- Thread N's init() writes PREFIX.started (its clock) once every thread has been set up;
-- done() writes PREFIX.out: one line per answer "code<TAB>completed<TAB>latency<TAB>meid", then
-- "#sent", "#ran_out" and "#errors" lines. The code is the envelope's statusCode, or "http-<status>"
-- when the body holds none.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

-- ---- the setup and done environment ------------------------------------------------------------

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function done(summary, latency, requests)
  local prefix = threads[1]:get("prefix")
  local out = assert(io.open(prefix .. ".out", "w"))
  local sent, ran_out = 0, 0
  for _, thread in ipairs(threads) do
    local codes, times, lats, meids = thread:get("codes"), thread:get("times"),
      thread:get("lats"), thread:get("meids")
    for k = 1, #codes do
      out:write(codes[k], "\t", string.format("%.6f", times[k]), "\t",
        string.format("%.6f", lats[k]), "\t", meids[k], "\n")
    end
    sent = sent + thread:get("sent")
    if thread:get("ran_out") then ran_out = ran_out + 1 end
  end
  local e = summary.errors
  out:write("#sent\t", sent, "\n#ran_out\t", ran_out, "\n")
  out:write(string.format("#errors\t%d\t%d\t%d\t%d\t%d\n",
    e.connect, e.read, e.write, e.status, e.timeout))
  out:close()
end

-- ---- each thread's environment -----------------------------------------------------------------

local reqs, count, index = {}, 0, 0
local cycle = true
local sent_at = nil
-- wrk calls request() once in thread 1 before running, only to check the request's shape
-- (script_verify_request); that call must not use up a request.
local verifying = false
codes, times, lats, meids = {}, {}, {}, {}
sent, ran_out = 0, false
pause, pause_next = 0, 0

function init(args)
  prefix, cycle, refused = args[1], args[2] == "cycle", args[4]
  local total = tonumber(args[3])
  pause = tonumber(args[5]) or 0
  if pause > 0 then  -- defined only when needed: wrk then delays every request by a timer
    function delay()
      local wait = pause_next
      pause_next = 0
      return wait
    end
  end
  local file = assert(io.open(prefix .. "-" .. id .. ".req", "rb"))
  local data = file:read("*a")
  file:close()
  local pos = 1
  while pos <= #data do
    local eol = string.find(data, "\n", pos, true)
    local length = tonumber(string.sub(data, pos, eol - 1))
    count = count + 1
    reqs[count] = string.sub(data, eol + 1, eol + length)
    pos = eol + 1 + length
  end
  verifying = id == 1
  if id == total then
    local started = assert(io.open(prefix .. ".started.tmp", "w"))
    started:write(string.format("%.6f\n", now()))
    started:close()
    os.rename(prefix .. ".started.tmp", prefix .. ".started")  -- whole, or not there yet
  end
end

function request()
  if verifying then
    verifying = false
    return reqs[1]
  end
  if index >= count then
    if cycle then
      index = 0
    else  -- cannot happen with one connection per thread; resend the last one, flagged
      ran_out = true
      wrk.thread:stop()
      return reqs[count]
    end
  end
  index = index + 1
  sent = sent + 1
  sent_at = now()
  return reqs[index]
end

function response(status, headers, body)
  local done_at = now()
  local n = #codes + 1
  codes[n] = string.match(body, '"statusCode"%s*:%s*"([^"]*)"') or ("http-" .. status)
  times[n] = done_at
  lats[n] = sent_at and (done_at - sent_at) or -1
  meids[n] = string.match(body, '"meid"%s*:%s*"([^"]*)"') or ""
  sent_at = nil
  if codes[n] == refused then
    pause_next = pause
    if not cycle then
      count = count + 1
      reqs[count] = reqs[index]
    end
  end
  if not cycle and index >= count then
    ran_out = true
    local finished = assert(io.open(prefix .. "-" .. id .. ".finished", "w"))
    finished:close()
    wrk.thread:stop()
  end
end
