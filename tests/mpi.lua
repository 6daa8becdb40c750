#!/usr/bin/env gilua
-- require "mpi": the module without mpiexec (a world of one), then three
-- ranks under `mpiexec --oversubscribe -n 3` on this machine: point to
-- point, non-blocking requests, collectives, split, the GIL released while
-- waiting, threads sharing MPI, argument errors; spawn; Ctrl-C in a wait;
-- the error when MPI is missing.
local t = require "tap"
local mpit = require "support.mpi"

mpit.need_mpiexec(t)

-- gilua itself does not link MPI: the module is loaded at run time.
do
  local p = io.popen("ldd " .. t.shquote(t.gilua()) .. " 2>&1")
  local libs = p:read("a")
  p:close()
  t.unlike(libs, "libmpi", "the gilua command does not link MPI")
  local dir = os.getenv("GILUA_BUILD") or "build"
  local f = io.open(dir .. "/lib/gilua/_mpi.so")
  t.ok(f ~= nil, "the module is built as lib/gilua/_mpi.so")
  if f then f:close() end
end

-- Alone: a world of one, MPI_THREAD_MULTIPLE granted.
do
  local r = mpit.run([[
local mpi = require "mpi"
local c = mpi.COMM_WORLD
check("world of one", c.rank == 0 and c.size == 1, tostring(c))
check("thread level", mpi.query_thread() == mpi.THREAD_MULTIPLE, mpi.query_thread())
check("tostring", tostring(c) == "<mpi.Intracomm rank 0 of 1>", tostring(c))
check("self", mpi.COMM_SELF.size == 1)
check("no parent", mpi.get_parent() == nil)
check("library", mpi.get_library_version():find("Open MPI") ~= nil, mpi.get_library_version())
check("allreduce of one", c:allreduce(41) == 41)
check("bcast of one", c:bcast({x = 1}, 0).x == 1)
check("send to self", (function() local q = c:isend("me", 0, 3); local v = c:recv(0, 3); q:wait(); return v == "me" end)())
local ok, e = pcall(c.send, c, 1, 1, 0)
check("send to a rank that is not there", not ok and ValueError:is(e) and tostring(e):find("Comm.send") and tostring(e):find("dest"), e)
ok, e = pcall(c.recv, c, 0, -5)
check("a negative tag", not ok and ValueError:is(e) and tostring(e):find("tag"), e)
ok, e = pcall(c.send, c, coroutine.create(print), 0)
check("a value that cannot travel", not ok, e)
ok, e = pcall(c.reduce, c, 1, 42)
check("an op that is not callable", not ok and TypeError:is(e) and tostring(e):find("op"), e)
ok, e = pcall(c.split, c, "red")
check("a color that is not an integer", not ok and TypeError:is(e), e)
local d = c:dup()
d:free()
ok, e = pcall(d.send, d, 1, 0)
check("a freed communicator", not ok and ValueError:is(e) and tostring(e):find("freed"), e)
ok, e = pcall(mpi.COMM_SELF.spawn, mpi.COMM_SELF, "/nonexistent/program", {}, 1)
check("spawning a program that is not there raises FileNotFoundError", not ok and FileNotFoundError:is(e), e)
ok, e = pcall(function() mpi.COMM_SELF:recv(5) end)
check("a source out of range", not ok and ValueError:is(e) and tostring(e):find("source"), e)
]], nil, { timeout = 60 })
  mpit.report(t, r, 17, "gilua alone")
end

-- Three ranks.
local THREE = [[
local mpi = require "mpi"
local threading = require "threading"
local time = require "time"
local c = mpi.COMM_WORLD
local me, n = c.rank, c.size
check("world", n == 3)

-- point to point: values of every kind, tags, status
if me == 0 then
  local shared = {}
  local cyc = {}; cyc.self = cyc
  c:send({1, 2.5, "s", nil, true, k = {shared, shared}, f = function(x) return x + me end, cyc = cyc}, 1, 7)
  c:send(nil, 2, 8)
  c:send("first", 1, 9); c:send("second", 1, 9)
elseif me == 1 then
  local v, st = c:recv(0, 7)
  check("a table arrives", v[1] == 1 and math.type(v[2]) == "float" and v[3] == "s" and v[4] == nil and v[5] == true)
  check("shared parts and cycles", v.k[1] == v.k[2] and v.cyc.self == v.cyc)
  check("a function with its upvalue", v.f(1) == 1)
  check("status", st.source == 0 and st.tag == 7 and st.count > 0 and mpi.Status:is(st), tostring(st))
  local st2 = mpi.Status()
  local a = c:recv(0, 9, st2)
  local b = c:recv{source = 0, tag = 9}
  check("messages keep their order", a == "first" and b == "second", tostring(a) .. " " .. tostring(b))
  check("a Status given is filled", st2.source == 0 and st2.tag == 9)
elseif me == 2 then
  local v, st = c:recv(mpi.ANY_SOURCE, mpi.ANY_TAG)
  check("nil travels, ANY_SOURCE and ANY_TAG", v == nil and st.source == 0 and st.tag == 8, tostring(st))
end

c:barrier()   -- rank 2's ANY_SOURCE above must not see what follows

-- probe and non-blocking requests
if me == 1 then
  check("iprobe: nothing yet", c:iprobe(2, 20) == false)
  c:send("go", 2, 19)
  local ok, st = c:probe(2, 20)
  check("probe waits and leaves the message", ok and st.count > 0 and c:recv(2, 20) == "late")
  local r = c:irecv(2, 21)
  local done = r:test()
  c:send("more", 2, 19)
  local v, st3 = r:wait()
  check("irecv: test false before, wait gives the value", done == false and v[2] == "x" and st3.tag == 21, tostring(done))
  local big = c:recv(2, 22)
  check("5 MB arrive whole", #big == 5000000 and big:sub(-3) == "end")
elseif me == 2 then
  c:recv(1, 19)
  c:send("late", 1, 20)
  c:recv(1, 19)
  local r = c:isend({1, "x"}, 1, 21)
  local v = r:wait()
  local done = r:test()
  check("isend: wait, then test says done", v == nil and done == true)
  local reqs = {}
  reqs[1] = c:isend(string.rep("y", 5000000 - 3) .. "end", 1, 22)
  check("waitall", #mpi.Request.waitall(reqs) == 0)
end

-- collectives
local data = c:bcast(me == 0 and {msg = "hello", f = function() return 42 end} or nil, 0)
check("bcast", data.msg == "hello" and data.f() == 42)
local part = c:scatter(me == 2 and {"a", "b", "c"} or nil, 2)
check("scatter from rank 2", part == ("abc"):sub(me + 1, me + 1), part)
local all = c:gather(me * 10, 1)
if me == 1 then check("gather on the root", all.n == 3 and all[1] == 0 and all[2] == 10 and all[3] == 20)
else check("gather elsewhere gives nil", all == nil) end
local ag = c:allgather({me})
check("allgather", ag[1][1] == 0 and ag[2][1] == 1 and ag[3][1] == 2)
local x = c:alltoall({me * 10 + 0, me * 10 + 1, me * 10 + 2})
check("alltoall", x[1] == me and x[2] == 10 + me and x[3] == 20 + me, table.concat(x, ","))
check("allreduce SUM", c:allreduce(me + 1) == 6)
check("allreduce MAX, MIN, PROD", c:allreduce(me, mpi.MAX) == 2 and c:allreduce(me, mpi.MIN) == 0
  and c:allreduce(me + 2, mpi.PROD) == 24)
local loc = c:allreduce({(me == 1) and 9 or me, me}, mpi.MAXLOC)
check("allreduce MAXLOC", loc[1] == 9 and loc[2] == 1)
local s = c:reduce(tostring(me), function(a, b) return a .. b end, 0)
if me == 0 then check("reduce with a function, in rank order", s == "012", s)
else check("reduce elsewhere gives nil", s == nil) end
check("scan and exscan", c:scan(1) == me + 1 and c:exscan(1) == (me > 0 and me or nil))
check("LAND, LOR, BOR", c:allreduce(me < 5, mpi.LAND) == true and c:allreduce(me == 2, mpi.LOR) == true
  and c:allreduce(1 << me, mpi.BOR) == 7)

-- barrier: nobody leaves before the last one arrives
local t0 = time.monotonic()
if me == 2 then time.sleep(0.3) end
c:barrier()
check("barrier waits for the last rank", time.monotonic() - t0 >= 0.25, time.monotonic() - t0)

-- split: color and key
local sub = c:split(me == 1 and mpi.UNDEFINED or 0, -me)
if me == 1 then check("split with UNDEFINED gives nil", sub == nil)
else
  check("split: size and order by key", sub.size == 2 and sub.rank == (me == 2 and 0 or 1), tostring(sub))
  check("split: collectives on the part", sub:allreduce(me) == 2)
end

-- the GIL is released while waiting: a thread goes on ticking
if me == 0 then
  local ticks, stop = 0, false
  local th = threading.Thread{ target = function() while not stop do ticks = ticks + 1; time.sleep(0.01) end end }
  th:start()
  time.sleep(0.05)
  local before = ticks
  local v = c:recv(1, 30)
  local during = ticks - before
  stop = true; th:join()
  check("another thread runs while recv waits", v == "late" and during >= 5, during)
elseif me == 1 then
  time.sleep(0.4)
  c:send("late", 0, 30)
end

-- threads: two threads of rank 0 receive at once, answered out of order
if me == 0 then
  local got = {}
  local ths = {}
  for i = 1, 2 do
    ths[i] = threading.Thread{ target = function() got[i] = c:recv(2, 40 + i) end }
    ths[i]:start()
  end
  for i = 1, 2 do ths[i]:join(20) end
  check("two threads wait on MPI at once", got[1] == "one" and got[2] == "two",
        tostring(got[1]) .. " " .. tostring(got[2]))
elseif me == 2 then
  time.sleep(0.1)
  c:send("two", 0, 42)
  c:send("one", 0, 41)
end

-- a root whose scatter array is wrong raises; the others go on
local ok, e = pcall(c.scatter, c, me == 0 and {1, 2} or nil, 0)
if me == 0 then check("scatter with a short array raises on the root", not ok and ValueError:is(e), e)
else check("... and the others are not left waiting", ok) end
c:barrier()
check("the end", true)
]]

do
  local r = mpit.run(THREE, 3, { timeout = 120 })
  t.is(r.status, 0, "mpiexec -n 3: every rank ends well")
  mpit.report(t, r, 65, "mpiexec -n 3")
end

-- MPI granting less than MPI_THREAD_MULTIPLE: calls are serialised by a
-- lock, and threads still share MPI (the same three ranks, asked for
-- MPI_THREAD_SERIALIZED).
do
  local r = mpit.run(THREE .. [[
check("serialized", mpi.query_thread() == mpi.THREAD_SERIALIZED, mpi.query_thread())
]], 3, { timeout = 120, mpiexec = "-x GILUA_MPI_THREAD_LEVEL=serialized" })
  t.is(r.status, 0, "MPI_THREAD_SERIALIZED: every rank ends well")
  mpit.report(t, r, 68, "MPI_THREAD_SERIALIZED")
end

-- Spawning workers from gilua alone, talking over the intercommunicator.
do
  local child = t.tmpname(".lua")
  local f = assert(io.open(child, "w"))
  f:write([[
local mpi = require "mpi"
local p = mpi.get_parent()
local v = p:recv(0, 1)
p:send({rank = mpi.COMM_WORLD.rank, size = mpi.COMM_WORLD.size, got = v, inter = mpi.Intercomm:is(p)}, 0, 2)
p:disconnect()
]])
  f:close()
  local r = mpit.run([[
local mpi = require "mpi"
local child = ...
local ic, codes = mpi.COMM_SELF:spawn(arg[-1], {child}, 2)
check("spawn gives an intercommunicator", mpi.Intercomm:is(ic) and ic.remote_size == 2 and #codes == 2, tostring(ic))
for i = 0, 1 do ic:send("hi " .. i, i, 1) end
local seen = {}
for _ = 1, 2 do
  local v, st = ic:recv(mpi.ANY_SOURCE, 2)
  seen[st.source] = v
end
check("each child answers from its rank", seen[0].rank == 0 and seen[1].rank == 1 and seen[1].got == "hi 1"
  and seen[0].size == 2 and seen[0].inter)
ic:disconnect()
check("disconnected", true)
]], nil, { args = { child } })
  mpit.report(t, r, 3, "spawn")
  os.remove(child)
end

-- Ctrl-C while a recv waits for a message that never comes.
do
  local script = t.tmpname(".lua")
  local f = assert(io.open(script, "w"))
  f:write([[
local mpi = require "mpi"
local time = require "time"
local t0 = time.monotonic()
io.stdout:write("waiting\n"); io.stdout:flush()
local ok, e = pcall(mpi.COMM_SELF.recv, mpi.COMM_SELF, 0, 1)
print(not ok and KeyboardInterrupt:is(e) and "interrupted" or ("no: " .. tostring(e)), time.monotonic() - t0)
local ok2 = pcall(mpi.COMM_SELF.barrier, mpi.COMM_SELF)
print(ok2 and "still works" or "broken")
]])
  f:close()
  local out = t.tmpname()
  local cmd = ("%s %s %s >%s 2>&1 & pid=$!; i=0; while [ $i -lt 200 ] && ! grep -q waiting %s; do sleep 0.05; i=$((i+1)); done; " ..
               "sleep 0.3; kill -INT $pid; wait $pid"):format(mpit.env(), t.shquote(t.gilua()), t.shquote(script),
               t.shquote(out), t.shquote(out))
  os.execute(cmd)
  local s = t.slurp(out) or ""
  t.like(s, "interrupted", "Ctrl-C interrupts a recv that waits (KeyboardInterrupt)")
  local secs = tonumber(s:match("interrupted%s+([%d%.]+)"))
  t.ok(secs and secs < 20, "... while it waits, not after")
  t.like(s, "still works", "... and MPI still works afterwards")
  os.remove(script); os.remove(out)
end

-- Where the module or the MPI library is missing, require says what to
-- install: a gilua without lib/gilua/ beside it (copied elsewhere), then
-- one whose _mpi.so cannot be loaded.
do
  local dir = t.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. t.shquote(dir))
  os.execute(("cp %s %s/gilua"):format(t.shquote(t.gilua()), t.shquote(dir)))
  local probe = dir .. "/probe.lua"
  local f = assert(io.open(probe, "w"))
  f:write('local ok, e = pcall(require, "mpi")\nprint(ok, ImportError:is(e), tostring(e))\n')
  f:close()
  local function run()
    local p = io.popen(("%s/gilua %s 2>&1"):format(t.shquote(dir), t.shquote(probe)))
    local out = p:read("a")
    p:close()
    return out
  end
  t.like(run(), "^false\ttrue\tImportError: mpi: this gilua was built without MPI support: install Open MPI %(Debian: apt%-get install libopenmpi%-dev openmpi%-bin",
         "without the module, require \"mpi\" raises ImportError saying what to install")
  os.execute("mkdir -p " .. t.shquote(dir .. "/lib/gilua"))
  f = assert(io.open(dir .. "/lib/gilua/_mpi.so", "w"))
  f:write("not a library")
  f:close()
  t.like(run(), "^false\ttrue\tImportError: mpi: the MPI library cannot be loaded %(.+%): install Open MPI",
         "when the library cannot be loaded, the error says so and what to install")
  os.execute("rm -rf " .. t.shquote(dir))
end

t.done_testing()
