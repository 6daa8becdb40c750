--[[
gilua.class: the class model every gilua module builds on.

The loader passes one argument, the registry of named classes: a class
made with `extend(name)` is stored there under `name`, so that C code can
find an exception class by its qualified name ("queue.Empty").

A class is a table:
  * an instance is a table whose metatable is its class;
  * `Cls(...)` makes an instance and calls `init(self, ...)` on it;
  * `Cls:extend([name])` makes a subclass, `Cls:is(x)` tests membership,
    `Cls:is_subclass(Other)` tests the hierarchy;
  * `Cls.__super` is the parent class, `Cls.__name` the qualified name.

Methods reach subclasses through an __index chain, but Lua looks
metamethods up with rawget on the metatable, so every "__" key of the parent
is copied into a subclass when it is made, and a metamethod that a class
gains later (assigned while the key is absent) is pushed down to the
subclasses that do not define their own. Replacing an existing metamethod
later only changes that class: define metamethods before subclassing.

Each class has its own small metatable (its "metaclass") holding __call
(construction), __index (the parent) and __newindex (the propagation
above). A class may customise construction by setting __call on its
metaclass, `getmetatable(Cls).__call = function(cls, ...) ... end`;
subclasses made afterwards inherit it (exceptions use this to capture the
traceback at the caller's level).

Properties. Python attributes that are computed or checked on write are
declared with

    Cls:property("value", getter, setter)   -- setter optional

getter(self) is called on `obj.value`, setter(self, v) on `obj.value = v`;
writing a property without setter raises AttributeError. A class gets the
__index/__newindex functions that make this work only once it (or an
ancestor) declares a property, so classes without properties keep the plain
table lookup. Property values must not be stored as raw fields of the
instance (they would hide the getter). A class with properties should not
also define its own __index or __newindex.
]]

local registry = ...
if type(registry) ~= "table" then registry = {} end

local rawget, rawset, next, type, tostring, error =
  rawget, rawset, next, type, tostring, error
local setmetatable, getmetatable = setmetatable, getmetatable
local byte = string.byte

-- Per-class bookkeeping, not inherited by subclasses.
local OWN = { __index = true, __name = true, __super = true,
              __getters = true, __setters = true }

-- Subclasses of each class, for pushing late metamethods down.
local WEAK_KEYS = { __mode = "k" }
local children = setmetatable({}, WEAK_KEYS)

-- Called for every field of a parent at each extend, so remembered per
-- name (a method name is looked at once), that making a class stays
-- cheap: every interpreter makes the built-in exception classes when it
-- starts.
local metakeys = {}
local function is_meta_key(k)
  local m = metakeys[k]
  if m == nil then
    if type(k) ~= "string" then return false end
    local a, b = byte(k, 1, 2)
    m = a == 95 and b == 95 and not OWN[k]
    metakeys[k] = m
  end
  return m
end

local function push_down(cls, k, v)
  local subs = children[cls]
  if not subs then return end
  for sub in next, subs do
    if rawget(sub, k) == nil then
      rawset(sub, k, v)
      push_down(sub, k, v)
    end
  end
end

-- __newindex of every metaclass: only runs when the key is new.
local function define(cls, k, v)
  rawset(cls, k, v)
  if v ~= nil and is_meta_key(k) then push_down(cls, k, v) end
end

local function construct(cls, ...)
  local obj = setmetatable({}, cls)
  cls.init(obj, ...)
  return obj
end

local function class_tostring(cls)
  return "class " .. tostring(rawget(cls, "__name"))
end

-- Every class, as a key: what tells a class from a table of the same
-- shape (the serializer sends a class as a class only when it is one).
-- C code finds it as the field __classes of Object's metaclass.
local classes = setmetatable({}, { __mode = "k" })

local Object = { __name = "Object" }
Object.__index = Object
setmetatable(Object, { __call = construct, __newindex = define,
                       __tostring = class_tostring, __classes = classes })
classes[Object] = true

function Object.init() end

-- Properties ---------------------------------------------------------------

local function no_setter(self, k)
  local cls = getmetatable(self)
  local msg = "property '" .. tostring(k) .. "' of '" ..
              tostring(rawget(cls, "__name")) .. "' object has no setter"
  local AttributeError = registry.AttributeError
  if AttributeError then error(AttributeError(msg), 3) end
  error(msg, 3)
end

-- The metatable that makes a getter/setter table inherit from t: one per
-- t, shared by all the subclasses.
local lenders = setmetatable({}, WEAK_KEYS)
local function lend(t)
  local mt = lenders[t]
  if mt == nil then
    mt = { __index = t }
    lenders[t] = mt
  end
  return mt
end

--[[ The instance access functions of every class with properties (its own
or inherited): one pair for all of them, rather than a pair of closures
per class, so that making a subclass costs no more than for any class.
cls.__getters is the class's own table of getters, or, through the class
chain, that of its nearest ancestor with properties; each such table
inherits (lend) from the next one up. ]]
local function prop_index(self, k)
  local cls = getmetatable(self)
  local get = cls.__getters[k]
  if get then return get(self) end
  return cls[k]
end

local function prop_newindex(self, k, v)
  local cls = getmetatable(self)
  local set = cls.__setters[k]
  if set then return set(self, v) end
  if cls.__getters[k] then return no_setter(self, k) end
  rawset(self, k, v)
end

-- The subclasses of cls now have properties too: their access functions,
-- and the tables of those with their own, which now inherit from g, s.
local function spread(cls, g, s)
  local subs = children[cls]
  if not subs then return end
  for sub in next, subs do
    rawset(sub, "__index", prop_index)
    rawset(sub, "__newindex", prop_newindex)
    local sg = rawget(sub, "__getters")
    if sg then
      setmetatable(sg, lend(g))
      setmetatable(rawget(sub, "__setters"), lend(s))
    else
      spread(sub, g, s)
    end
  end
end

-- Gives cls getter/setter tables of its own.
local function equip(cls)
  local g, s = rawget(cls, "__getters"), rawget(cls, "__setters")
  if g then return g, s end
  g, s = {}, {}
  local up = rawget(cls, "__super")       -- the nearest ancestor's lend theirs
  while up and not rawget(up, "__getters") do up = rawget(up, "__super") end
  if up then
    setmetatable(g, lend(rawget(up, "__getters")))
    setmetatable(s, lend(rawget(up, "__setters")))
  end
  rawset(cls, "__getters", g)
  rawset(cls, "__setters", s)
  rawset(cls, "__index", prop_index)
  rawset(cls, "__newindex", prop_newindex)
  spread(cls, g, s)
  return g, s
end

function Object.property(cls, name, getter, setter)
  if type(getter) ~= "function" then
    error("property(): getter must be a function", 2)
  end
  local g, s = equip(cls)
  g[name] = getter
  s[name] = setter
  return cls
end

-- Class API -----------------------------------------------------------------

function Object.extend(parent, name)
  if name ~= nil and type(name) ~= "string" then
    error("extend(): the class name must be a string", 2)
  end
  -- made with its own fields at once (a table that grows field by field
  -- is resized at each power of two)
  local pindex = rawget(parent, "__index")
  local cls = { __index = false, __super = parent,
                __name = name or rawget(parent, "__name") }
  if pindex == parent or pindex == nil then
    cls.__index = cls
  else                              -- properties (the __newindex came along),
    cls.__index = pindex            -- or a custom __index function or table
  end
  for k, v in next, parent do
    if metakeys[k] or (metakeys[k] == nil and is_meta_key(k)) then cls[k] = v end
  end
  local pmeta = getmetatable(parent)
  setmetatable(cls, { __index = parent, __newindex = define,
                      __call = pmeta and pmeta.__call or construct,
                      __tostring = class_tostring })
  local subs = children[parent]
  if not subs then
    subs = setmetatable({}, WEAK_KEYS)
    children[parent] = subs
  end
  subs[cls] = true
  classes[cls] = true
  if name then registry[name] = cls end
  return cls
end

-- True when x is an instance of cls or of one of its subclasses.
function Object.is(cls, x)
  if type(x) ~= "table" then return false end
  local c = getmetatable(x)
  while type(c) == "table" do
    if c == cls then return true end
    c = rawget(c, "__super")
  end
  return false
end

-- True when cls is other or descends from it.
function Object.is_subclass(cls, other)
  local c = cls
  while type(c) == "table" do
    if c == other then return true end
    c = rawget(c, "__super")
  end
  return false
end

return Object
