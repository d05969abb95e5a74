-- wrk script used by bench/gateway.sh and bench/a2a-gateway.sh (WRK=1): a
-- second, independent closed-loop load generator beside agentmesh-loadgen.
-- Sends the same ~1 KB JSON-RPC POST as the loadgen (MCP `tools/call` of
-- `echo` on a 2025-11-25 session, or A2A 1.0 `SendMessage`), a fresh id per
-- request, and checks every answer (HTTP 200, a "result", no
-- "isError":true). Prints one JSON line at the end.
--
--   BENCH_KIND=mcp|a2a  BENCH_BEARER=TOKEN  BENCH_SESSION=MCP-SESSION-ID
--   BENCH_BODY_BYTES=1024
--   wrk -t1 -c16 -d15s -s bench/wrk-jsonrpc.lua URL
local kind = os.getenv("BENCH_KIND") or "mcp"
local bearer = os.getenv("BENCH_BEARER") or ""
local session = os.getenv("BENCH_SESSION") or ""
local size = tonumber(os.getenv("BENCH_BODY_BYTES") or "1024")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
if kind == "a2a" then
  wrk.headers["A2A-Version"] = "1.0"
else
  wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
  if session ~= "" then wrk.headers["Mcp-Session-Id"] = session end
end
if bearer ~= "" then wrk.headers["Authorization"] = "Bearer " .. bearer end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local pad, n
function init(args)
  n = 0
  bad = 0
  first_bad = ""
  local skeleton
  if kind == "a2a" then
    skeleton = '{"jsonrpc":"2.0","id":0000000000,"method":"SendMessage","params":{"message":{"messageId":"m0000000000","role":"ROLE_USER","parts":[{"text":""}]}}}'
  else
    skeleton = '{"jsonrpc":"2.0","id":0000000000,"method":"tools/call","params":{"name":"echo","arguments":{"text":""}}}'
  end
  pad = string.rep("a", math.max(0, size - #skeleton))
end

function request()
  n = n + 1
  local id = tid * 1000000000 + n
  local body
  if kind == "a2a" then
    body = string.format('{"jsonrpc":"2.0","id":%d,"method":"SendMessage","params":{"message":{"messageId":"m%d","role":"ROLE_USER","parts":[{"text":"%s"}]}}}', id, id, pad)
  else
    body = string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"%s"}}}', id, pad)
  end
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"result"', 1, true)
      or string.find(body, '"isError":true', 1, true) then
    bad = bad + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. string.sub(body, 1, 120)
    end
  end
end

function done(summary, latency, requests)
  local nbad, first = 0, ""
  for _, t in ipairs(threads) do
    nbad = nbad + t:get("bad")
    if first == "" then first = t:get("first_bad") end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  local ok = summary.requests - nbad
  io.write(string.format(
    '{"tool":"wrk","requests":%d,"ok":%d,"bad":%d,"socket_errors":%d,"seconds":%.3f,"rps":%.1f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"first_bad":"%s"}\n',
    summary.requests, ok, nbad, e.connect + e.read + e.write + e.timeout, secs, ok / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    (string.gsub(first, '[%c"\\]', "?"))))
end
