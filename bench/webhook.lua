-- wrk script for the token-review webhook: posts a TokenReview (authentication.k8s.io/v1, as
-- kube-apiserver does) of real access tokens, round robin over the file WEBHOOK_TOKENS (one
-- token per line), and counts every answer that is not "authenticated": true as a failure.
local tokens_file = os.getenv("WEBHOOK_TOKENS") or "access-tokens.txt"
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for token in io.lines(tokens_file) do
    table.insert(bodies, '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview",'
      .. '"metadata":{"creationTimestamp":null},"spec":{"token":"' .. token
      .. '","audiences":["https://kubernetes.default.svc"]},"status":{"user":{}}}')
  end
  next_body = id
  refused = 0
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/authenticate/default",
    { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }, bodies[next_body])
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"authenticated":true', 1, true) then
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local refused_total = 0
  for _, t in ipairs(threads) do refused_total = refused_total + t:get("refused") end
  io.write(string.format(
    "requests: %d, not authenticated: %d, p50: %.2f ms, p99: %.2f ms, rps: %.0f\n",
    summary.requests, refused_total, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6)))
end
