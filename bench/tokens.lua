-- wrk script for bench/run.sh's "bearer, first sight" row: every request carries another
-- token from the file named by the TOKENS environment variable (one per line, from
-- bench/mint_tokens.mjs), so the gateway checks each one's signature. Threads take disjoint
-- slices (TOKEN_THREADS must be wrk's -t). A thread that has used up its slice starts it
-- again (those are cached tokens then), and the run prints "tokens ran out", which
-- bench/measure.py reports as an error of the row: mint more (BENCH_TOKENS).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  exhausted = false
  local n = 0
  local every = tonumber(os.getenv("TOKEN_THREADS") or "1")
  for line in io.lines(os.getenv("TOKENS")) do
    if n % every == id then table.insert(tokens, line) end
    n = n + 1
  end
  next_token = 1
end

function request()
  if next_token > #tokens then
    next_token = 1
    exhausted = true
  end
  local t = tokens[next_token]
  next_token = next_token + 1
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. t, ["Accept"] = "application/json" })
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    if thread:get("exhausted") then
      io.write("tokens ran out\n")
      return
    end
  end
end
