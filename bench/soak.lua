-- wrk script for bench/soak.sh: every connection sends a random mix of valid, invalid and
-- oversized requests (and health checks), and each thread tallies the answers by status code;
-- done() prints the totals as one "codes" line that soak.sh reads.

local payload_limit = tonumber(os.getenv("SOAK_PAYLOAD_BYTES") or "1048576")

local function deep(n) return string.rep("[", n) .. string.rep("]", n) end

local function post(path, body, content_type)
  return wrk.format("POST", path, { ["Content-Type"] = content_type or "application/json" }, body)
end

-- { weight, request } pairs; the weights sum to 100.
local mix = {}
local function add(weight, request) mix[#mix + 1] = { weight, request } end

local review = "This blender is loud but it crushes ice in seconds, and the jar is easy to clean. "
add(34, post("/invocations", '{"inputs": "' .. review .. '"}'))
add(10, post("/invocations", '{"inputs": ["great", "awful, broke in a week", "' .. string.rep(review, 8) .. '"], "parameters": {"top_k": null}}'))
add(5, post("/", '{"inputs": "I love it"}'))
add(4, post("/invocations", "inputs\n\"a, quoted\"\nplain\n", "text/csv"))
add(4, post("/invocations", '{"inputs": "one"}\n"two"\n', "application/jsonlines"))
add(3, post("/tokenize", '{"inputs": "tokenize me"}'))
add(5, wrk.format("GET", "/ping"))
add(2, wrk.format("GET", "/metrics"))
-- invalid: each must be a 4xx, never a crash or a 5xx
add(5, post("/invocations", '{"inputs": '))
add(4, post("/invocations", '{"inputs": "x", "parameters": {"truncation": ' .. deep(200000) .. '}}'))
add(4, post("/invocations", '{"inputs": ' .. deep(70) .. '}'))
add(3, post("/invocations", '{"inputs": "x", "parameters": {"top_k": 1e999}}'))
add(3, post("/invocations", '{"inputs": "bad \xff utf8"}'))
add(3, post("/invocations", "<xml/>", "application/xml"))
add(3, post("/invocations", '{"inputs": ' .. string.rep('"x",', 200) .. '"x"]}'))
add(2, wrk.format("GET", "/no/such/route"))
-- oversized: refused (413) before the body is read
add(2, post("/invocations", '{"inputs": "' .. string.rep("a", payload_limit + 1024) .. '"}'))
-- a request over the client batch limit
add(4, post("/invocations", '{"inputs": [' .. string.rep('"x",', 999) .. '"x"]}'))

local cumulative, total = {}, 0
for i, entry in ipairs(mix) do
  total = total + entry[1]
  cumulative[i] = total
end

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

function init(args)
  codes = {}
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
end

function request()
  local r = math.random(total)
  for i, c in ipairs(cumulative) do
    if r <= c then return mix[i][2] end
  end
  return mix[1][2]
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local all = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("codes")
    for code, n in pairs(c) do all[code] = (all[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(all) do parts[#parts + 1] = code .. "=" .. n end
  table.sort(parts)
  io.write("codes " .. table.concat(parts, " ") .. "\n")
  io.write(string.format("socket_errors connect=%d read=%d write=%d timeout=%d\n", summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
