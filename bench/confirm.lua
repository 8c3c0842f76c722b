-- wrk script: signers confirming, as they do after a surge. Every request confirms a different
-- pending signature with the token its confirmation e-mail carries (POST
-- /api/v1/signatures/confirm), read from BENCH_TOKENS (one a line, made by bench/webhooks.py
-- with Chorus's own token code); BENCH_THREADS (wrk's -t) splits the file between threads.
-- A 200 that says "confirmed" counts as accepted, anything else (an "already_confirmed" once
-- the tokens run out, an error answer) as other. sign.lua's setup() and done() (the counts
-- bench.py reads) are reused as they are.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "sign.lua")

local tokens = {}
local stride = tonumber(os.getenv("BENCH_THREADS") or "2")

function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    table.insert(tokens, line)
  end
end

function request()
  counter = counter + 1
  sent = sent + 1
  local n = math.min((counter - 1) * stride + tid, #tokens) -- the last one again when out
  local body = string.format('{"token":"%s"}', tokens[n])
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"status":"confirmed"', 1, true) then
    accepted = accepted + 1
  else
    other = other + 1
  end
end
