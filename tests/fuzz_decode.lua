#!/usr/bin/env gilua
-- A short run of the decoder's fuzz target (tests/fuzz/decode.c, built by
-- make test beside the seeds): no crash, no sanitizer report, no huge
-- allocation, no hang. `make fuzz` runs a long one.
local t = require "tap"

local build = os.getenv("GILUA_BUILD") or "build"
local bin, seeds = build .. "/fuzz/decode", build .. "/fuzz/seeds"
local RUNS, SECONDS = 300000, 25

local f = io.open(bin, "r")
t.ok(f ~= nil, "the fuzz target is built (" .. bin .. "; make test builds it)")
if not f then t.done_testing() end
f:close()

local corpus = os.tmpname()
os.remove(corpus)
os.execute("mkdir -p " .. corpus .. " && cp " .. seeds .. "/seed-* " .. corpus)
local log = corpus .. ".log"
local cmd = ("%s -runs=%d -max_total_time=%d -max_len=8192 -timeout=10 -rss_limit_mb=4096 " ..
             "-print_final_stats=1 %s > %s 2>&1"):format(bin, RUNS, SECONDS, corpus, log)
local ok, how, code = os.execute(cmd)
local out = io.open(log):read("a")
local seedcount = 0
for _ in io.popen("ls " .. seeds):lines() do seedcount = seedcount + 1 end
t.ok(seedcount >= 40, "a seed corpus of real messages (" .. seedcount .. " files)")
t.ok(ok and how == "exit" and code == 0, "the fuzz run ends cleanly (" .. tostring(how) .. " " .. tostring(code) .. ")")
local runs = tonumber(out:match("stat::number_of_executed_units:%s*(%d+)") or "0")
t.ok(runs >= 10000, ("it executed %d inputs"):format(runs))
t.ok(not out:find("ERROR: ", 1, true) and not out:find("runtime error", 1, true),
     "no sanitizer report")
if not (ok and code == 0) then t.diag(out:sub(-3000)) end
t.note(("%d executions, %s new units"):format(runs, out:match("new_units_added:%s*(%d+)") or "?"))
os.execute("rm -rf " .. corpus .. " " .. log)
t.done_testing()
