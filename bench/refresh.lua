-- wrk script for the refresh-token grant: every connection walks its own chain of rotating
-- refresh tokens (each response's refresh_token is the next request's), so no token is ever
-- replayed, exactly like real clients. Tokens come from bench_seed (one per line).
local tokens_file = os.getenv("REFRESH_TOKENS") or "refresh-tokens.txt"
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  queue = {}
  local n = tonumber(os.getenv("WRK_THREADS") or "2")
  local i = 0
  for line in io.lines(tokens_file) do
    if i % n == (id - 1) then table.insert(queue, line) end
    i = i + 1
  end
  failures = 0
end

function request()
  local token = table.remove(queue)
  if token == nil then
    -- Out of chains: more connections than seeded sessions for this thread.
    return wrk.format("GET", "/healthz")
  end
  local body = "grant_type=refresh_token&client_id=kubectl-credential&refresh_token=" .. token
  return wrk.format("POST", "/oauth/token", { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end

function response(status, headers, body)
  local next_token = body and string.match(body, '"refresh_token":"([^"]+)"')
  if next_token then
    table.insert(queue, next_token)
  elseif status ~= 200 then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format("requests: %d, non-2xx: %d, p50: %.2f ms, p99: %.2f ms, rps: %.0f\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6)))
end
