-- bench/subprocess_cat.lua: twin of subprocess_cat.py.
--
-- 50 x run({"cat"}, {input = 1 MiB, capture_output = true}): 1 MiB into
-- the child and 1 MiB back through communicate's multiplexed pipes.
-- Prints time=<seconds>.
local subprocess = require "subprocess"
local time = require "time"

local N = 50
local data = string.rep("0123456789abcdef", 65536)   -- 1 MiB

local t0 = time.perf_counter()
local same = 0
for _ = 1, N do
  local r = subprocess.run({"cat"}, {input = data, capture_output = true})
  if r.stdout == data then same = same + 1 end
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(same))
