-- bench/subprocess_true.lua: twin of subprocess_true.py.
--
-- 300 x subprocess.run({"true"}): the whole life of a child (PATH lookup,
-- posix_spawn, waiting without the GIL, collecting it), nothing to read.
-- Prints time=<seconds>.
local subprocess = require "subprocess"
local time = require "time"

local N = 300

local t0 = time.perf_counter()
local failed = 0
for _ = 1, N do
  if subprocess.run({"true"}).returncode ~= 0 then failed = failed + 1 end
end
print(("time=%.6f"):format(time.perf_counter() - t0))
print(("check=%d"):format(N - failed))
