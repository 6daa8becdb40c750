--[[
gilua.repr: how the interactive loop shows the values of an expression.

As lua's loop, it prints them with the global print, tab-separated, so
strings, numbers and values with __tostring (an exception object:
"ValueError: message") look as they do in lua5.4 -i. A table that Lua
would show as "table: 0x..." (no __tostring, no __name) shows its
contents instead, as Python's loop shows a list or a dict:

    > {1, 2, 3, name = "x"}
    {1, 2, 3, name = "x"}

  * the sequence 1..n comes first, then the other keys sorted (numbers,
    strings, booleans, the rest); a key that is a name is written
    `name = v`, any other `[key] = v`;
  * strings inside a table are quoted, with escapes for quotes, backslashes
    and control characters (and for bytes past ASCII unless the string is
    valid UTF-8);
  * a table that does not fit on a line of WIDTH columns takes several,
    indented by two spaces a level; items that hold no table share a line
    while it fits, a table gets a line (or more) of its own;
  * bounded: MAX_ITEMS items a table, MAX_TOTAL for the whole value, then
    "... (N more)"; tables nested deeper than MAX_DEPTH show as "{...}";
    a table inside itself shows as "<cycle>";
  * only raw accesses (next, rawget): showing a table runs no __index or
    __pairs; __tostring runs for values that have one, as tostring does.

  repr(v)        the text shown for one value
  display(...)   prints the values as the loop does
]]

local M = {}

local WIDTH = 79
local MAX_DEPTH = 5
local MAX_ITEMS = 100
local MAX_TOTAL = 300

local type, tostring, pcall, next, rawget, select =
  type, tostring, pcall, next, rawget, select
local ipairs, mathtype, utf8len = ipairs, math.type, utf8.len
local concat, sort, pack, unpack = table.concat, table.sort, table.pack, table.unpack
local format, rep = string.format, string.rep
-- The metatable itself, past a __metatable field, as luaL_tolstring sees it.
local getmt = debug and debug.getmetatable or getmetatable

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
            local nil not or repeat return then true until while]]):gmatch("%a+") do
  KEYWORDS[w] = true
end

-- Does Lua's tostring give "table: 0x..." for v?
local function plain_table(v)
  if type(v) ~= "table" then return false end
  local mt = getmt(v)
  return mt == nil or (rawget(mt, "__tostring") == nil and
                       type(rawget(mt, "__name")) ~= "string")
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t", ["\a"] = "\\a",
                  ["\b"] = "\\b", ["\f"] = "\\f", ["\v"] = "\\v" }

local function escape(c)
  return ESCAPES[c] or format("\\%03d", c:byte())
end

-- Text in UTF-8 shows as it is; other bytes past ASCII are escaped too.
local function quote(s)
  local special = utf8len(s) and '[%c"\\]' or '[%c"\\\128-\255]'
  return '"' .. s:gsub(special, escape) .. '"'
end

local function scalar(v)
  if type(v) == "string" then return quote(v) end
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return "<" .. type(v) .. ": __tostring failed>"
end

-- Key order: numbers, strings, booleans, then anything else.
local RANK = { number = 1, string = 2, boolean = 3 }

local function before(a, b)
  local ra, rb = RANK[type(a)] or 4, RANK[type(b)] or 4
  if ra ~= rb then return ra < rb end
  if ra == 1 or ra == 2 then return a < b end
  if ra == 3 then return not a and b end
  return scalar(a) < scalar(b)
end

-- The keys of t past its sequence 1..n, sorted.
local function other_keys(t, n)
  local keys = {}
  for k in next, t do
    if not (mathtype(k) == "integer" and k >= 1 and k <= n) then
      keys[#keys + 1] = k
    end
  end
  sort(keys, before)
  return keys
end

local format_value

-- Joins the items of a table: on one line if it fits in 'width' columns,
-- else over several lines, each 'indent' deep; items that hold no table
-- ('simple') share a line while they fit.
local function join(items, simple, indent, width)
  local flat, multiline = concat(items, ", "), false
  for _, it in ipairs(items) do
    if it:find("\n", 1, true) then multiline = true break end
  end
  if not multiline and #flat + 2 <= width then return "{" .. flat .. "}" end
  local pad = rep(" ", indent + 2)
  local lines, line = {}, nil
  for i, it in ipairs(items) do
    if line and simple[i] and #line + 1 + #it + 1 <= WIDTH then
      line = line .. " " .. it .. ","
    else
      if line then lines[#lines + 1] = line end
      line = pad .. it .. ","
    end
    if not simple[i] then lines[#lines + 1] = line; line = nil end
  end
  if line then lines[#lines + 1] = line end
  return "{\n" .. concat(lines, "\n") .. "\n" .. rep(" ", indent) .. "}"
end

local function format_table(t, st, indent, width)
  if st.open[t] then return "<cycle>" end
  if st.depth >= MAX_DEPTH then return "{...}" end
  st.open[t] = true
  st.depth = st.depth + 1
  local items, simple, n = {}, {}, 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  local keys = other_keys(t, n)
  local total = n + #keys
  local child = indent + 2
  for i = 1, total do
    if #items >= MAX_ITEMS or st.left <= 0 then
      items[#items + 1] = format("... (%d more)", total - i + 1)
      simple[#items] = true
      break
    end
    st.left = st.left - 1
    local k, head = i, ""
    if i > n then
      k = keys[i - n]
      if type(k) == "string" and k:find("^[%a_][%w_]*$") and not KEYWORDS[k] then
        head = k .. " = "
      else
        head = "[" .. format_value(k, st, child, WIDTH - child) .. "] = "
      end
    end
    local v = rawget(t, k)
    items[#items + 1] = head .. format_value(v, st, child, WIDTH - child - #head)
    simple[#items] = not plain_table(v) and not plain_table(k)
  end
  st.depth = st.depth - 1
  st.open[t] = nil
  return join(items, simple, indent, width)
end

function format_value(v, st, indent, width)
  if plain_table(v) then return format_table(v, st, indent, width) end
  return scalar(v)
end

function M.repr(v)
  if not plain_table(v) then return scalar(v) end
  return format_table(v, { open = {}, depth = 0, left = MAX_TOTAL }, 0, WIDTH)
end

function M.display(...)
  local vals = pack(...)
  for i = 1, vals.n do
    if plain_table(vals[i]) then vals[i] = M.repr(vals[i]) end
  end
  return print(unpack(vals, 1, vals.n))
end

return M
