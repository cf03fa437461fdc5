-- wrk script: raw etcd v3 puts of a 1 KiB value through etcd's JSON gateway
-- (POST /v3/kv/put), each request a new key. Usage:
--   wrk -t2 -c64 -d20s -s bench/etcd-put.lua http://127.0.0.1:2379
local counter = 0
local value = string.rep("x", 1024)

local b64chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end

local encoded_value = b64(value)
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function request()
  counter = counter + 1
  local key = b64("/bench/" .. tostring(tid) .. "/" .. tostring(counter))
  local body = '{"key":"' .. key .. '","value":"' .. encoded_value .. '"}'
  return wrk.format("POST", "/v3/kv/put", { ["Content-Type"] = "application/json" }, body)
end
