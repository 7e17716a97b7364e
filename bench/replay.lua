-- wrk script: replays pre-signed LiveKit webhooks from a file, one request per line
-- ("<Authorization>\t<body>"), in file order, starting at a given line.
--   wrk -t1 -c50 -d10s -s bench/replay.lua http://127.0.0.1:PORT -- FILE START
-- One thread: one Lua state, so the lines go out in order (a call's events many requests apart).
local requests = {}
local next_index = 1

init = function(args)
  local file = args[1]
  local start = tonumber(args[2] or "0")
  local all = {}
  for line in io.lines(file) do
    local tab = string.find(line, "\t", 1, true)
    local headers = {
      ["Authorization"] = string.sub(line, 1, tab - 1),
      ["Content-Type"] = "application/webhook+json",
    }
    all[#all + 1] = wrk.format("POST", "/webhook", headers, string.sub(line, tab + 1))
  end
  for i = start + 1, #all do requests[#requests + 1] = all[i] end
  for i = 1, start do requests[#requests + 1] = all[i] end
end

request = function()
  local req = requests[next_index]
  next_index = next_index % #requests + 1
  return req
end
