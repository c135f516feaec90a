-- wrk script for the RFC 8693 token exchange: every request sends a platform token not sent
-- before (tokens from bench_workload, one per line, split between the threads), so each one
-- is a full exchange: signature check against the cached JWKS, the rule, the jti reservation,
-- a session, an audit row and an ES256 token.
local tokens_file = os.getenv("EXCHANGE_TOKENS") or "tokens.txt"
local audience = os.getenv("EXCHANGE_AUDIENCE") or "default"
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  queue = {}
  local n = tonumber(os.getenv("WRK_THREADS") or "2")
  local i = 0
  for line in io.lines(tokens_file) do
    if i % n == (id - 1) then table.insert(queue, line) end
    i = i + 1
  end
end

function request()
  local token = table.remove(queue)
  if token == nil then
    -- Out of tokens: a cheap request, counted apart (raise COUNT).
    return wrk.format("GET", "/healthz")
  end
  local body = "grant_type=urn:ietf:params:oauth:grant-type:token-exchange"
    .. "&subject_token_type=urn:ietf:params:oauth:token-type:jwt"
    .. "&audience=" .. audience .. "&subject_token=" .. token
  return wrk.format("POST", "/oauth/token", { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end

function done(summary, latency, requests)
  io.write(string.format("requests: %d, non-2xx: %d, p50: %.2f ms, p99: %.2f ms, rps: %.0f\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6)))
end
