-- bench/startup.lua: twin of startup.py. The harness times the whole
-- process (start-up is the point): start, require threading and time, exit.
local threading = require "threading"   -- luacheck: ignore
local time = require "time"             -- luacheck: ignore
