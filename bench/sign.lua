-- wrk script: signing as a surge really comes. Every request is a new signer with a new e-mail
-- address, at the domains people use (large providers, and a long tail of small ones), each
-- from their own client address: X-Forwarded-For, which the server trusts from loopback as
-- behind a proxy (uvicorn's FORWARDED_ALLOW_IPS default), so the abuse controls see it.
--
-- BENCH_PHASE (a small number, one per phase of a run) keeps addresses unique across phases,
-- BENCH_RUN tags the e-mail addresses so that the bench can find the phase's signatures.
-- BENCH_MIX=1: a realistic mix instead: 10 % of signers share an address with three others
-- (households, offices), 2 % are bots signing from four addresses, which should be held.
-- Counts requests sent and answers by status; done() prints them for bench.py.
counter = 0
sent = 0
accepted = 0
other = 0
local threads = {}
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local phase = tonumber(os.getenv("BENCH_PHASE") or "1")
local mix = os.getenv("BENCH_MIX") == "1"

-- Large providers (exempt from the per-domain limit by default), weighted roughly as signers
-- of a Korean/Ukrainian/international campaign use them; the rest of the signers are spread
-- over 1,000 small domains (organisations, universities, small providers).
local providers = {
  "gmail.com", "gmail.com", "gmail.com", "gmail.com", "gmail.com", "gmail.com",
  "naver.com", "naver.com", "naver.com", "ukr.net", "ukr.net", "outlook.com",
  "yahoo.com", "daum.net", "hanmail.net", "i.ua",
}
local PROVIDER_SHARE = 75 -- per cent of signers at a large provider

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local function address(n)
  -- n < 2^24: the phase picks the first octet, so no two phases share an address.
  return string.format("%d.%d.%d.%d", 20 + phase, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

function request()
  counter = counter + 1
  sent = sent + 1
  local n = (counter * 8 + tid) % 16777216 -- unique per thread (up to 8 threads) and request
  local roll = (counter * 37 + tid * 11) % 100
  local ip, local_part, domain
  if roll < PROVIDER_SHARE then
    domain = providers[counter % #providers + 1]
  else
    -- Spread over all 1,000 (997: a prime, so that which domain does not follow from the
    -- roll above, whose 100 shares factors with 1,000: counter % 1000 put this quarter of the
    -- signers at a quarter of the domains, four times the real rate per domain, and a
    -- 64-client surge past the per-domain limit of 300 a minute).
    domain = string.format("lab%d.example.org", (counter * 7 + tid * 131) % 997)
  end
  local_part = string.format("s-%s-%d-%d", run, tid, counter)
  ip = address(n)
  if mix then
    local kind = (counter * 13 + tid * 7) % 100
    if kind < 2 then -- a bot: four addresses, one throwaway domain
      ip = string.format("203.0.113.%d", counter % 4 + 1)
      local_part = "bot-" .. local_part
      domain = "bots.example.net"
    elseif kind < 12 then -- an address shared with three other signers
      ip = address(16777215 - (math.floor(counter / 40) * 8 + tid))
    end
  end
  local body = string.format(
    '{"name":"Bench Signer","email":"%s@%s","country":"KR"}', local_part, domain)
  return wrk.format("POST", wrk.path,
    {["Content-Type"] = "application/json", ["X-Forwarded-For"] = ip}, body)
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total_sent, total_accepted, total_other = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_accepted = total_accepted + thread:get("accepted")
    total_other = total_other + thread:get("other")
  end
  io.write(string.format(
    "BENCH sent=%d accepted=%d other=%d errors=%d p50_us=%d p99_us=%d duration_us=%d\n",
    total_sent, total_accepted, total_other,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration))
end
