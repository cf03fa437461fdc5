-- wrk script: durable creates of 1 KiB ConfigMaps in namespace default, authenticated with a
-- static bearer token (start the server with --token-auth-file). Usage:
--   TOKEN=secret wrk -t2 -c64 -d20s -s bench/reddwarf-create.lua https://127.0.0.1:6443
local counter = 0
local payload = string.rep("x", 1024)
local thread_id = 0
local token = os.getenv("TOKEN") or "bench-token"
local run = tostring(os.time())

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function request()
  counter = counter + 1
  local name = "wrk-" .. run .. "-" .. tostring(tid) .. "-" .. tostring(counter)
  local body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"' .. name ..
      '"},"data":{"payload":"' .. payload .. '"}}'
  return wrk.format("POST", "/api/v1/namespaces/default/configmaps",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }, body)
end

local non201 = 0
function response(status, headers, body)
  if status ~= 201 then non201 = non201 + 1 end
end
