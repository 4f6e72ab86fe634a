-- wrk script for bench/serve_load.sh: POST one review per request to /invocations, varying the
-- text so the server cannot answer from a cache (it has none, but the peer comparison stays fair).
local reviews = {
  "I love it, the battery lasts for days and the screen is sharp.",
  "Terrible, it broke after two days and support never answered.",
  "Decent value for the price, though the manual is confusing.",
  "Would not buy again: slow, noisy and the strap snapped.",
}
local n = 0
request = function()
  n = n + 1
  local body = '{"inputs": "' .. reviews[(n % #reviews) + 1] .. ' #' .. n .. '"}'
  return wrk.format("POST", "/invocations", {["Content-Type"] = "application/json"}, body)
end
