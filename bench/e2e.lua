-- wrk script of bench/e2e.sh (the end-to-end benchmark, issue #11).
--
-- Environment (set by e2e.sh):
--   E2E_METHOD   GET or POST
--   E2E_PATH     /read, /write or /create
--   E2E_COOKIES  a file of `session=<value>` lines, one per session; each
--                request carries the next one's Cookie header, round robin.
--                Empty or unset: requests carry no cookie (scenario D).
--
-- At the end it prints one line that e2e.sh parses:
--   E2E_RESULT requests=N duration_us=N p50_us=N p99_us=N status=N connect=N read=N write=N timeout=N
-- (`status` is wrk's count of responses that are not 2xx or 3xx.)

local method = os.getenv("E2E_METHOD") or "GET"
local path = os.getenv("E2E_PATH") or "/read"
local cookie_file = os.getenv("E2E_COOKIES") or ""

local requests = {}
local count = 0
local next_index = 0

-- Runs in each thread after wrk has set the Host header, so every request
-- is formatted once here and only picked in request().
function init(args)
  if cookie_file ~= "" then
    for line in io.lines(cookie_file) do
      if line ~= "" then
        count = count + 1
        requests[count] = wrk.format(method, path, { ["Cookie"] = line })
      end
    end
    assert(count > 0, "no cookies in " .. cookie_file)
  else
    count = 1
    requests[1] = wrk.format(method, path)
  end
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "E2E_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
