-- wrk script: every request signs with a new e-mail address; counts answers by status.
-- The thread id and a counter make addresses unique across threads and runs.
counter = 0
accepted = 0
other = 0
local threads = {}
local run = os.getenv("BENCH_RUN") or tostring(os.time())

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"name":"Bench Signer","email":"bench-%s-%d-%d@example.org","country":"KR"}',
    run, tid, counter)
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total_accepted, total_other = 0, 0
  for _, thread in ipairs(threads) do
    total_accepted = total_accepted + thread:get("accepted")
    total_other = total_other + thread:get("other")
  end
  io.write(string.format("BENCH accepted=%d other=%d errors=%d p50_us=%d p99_us=%d duration_us=%d\n",
    total_accepted, total_other,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration))
end
