#!/usr/bin/env gilua
-- The class model (gilua.class): extend, init, inheritance of methods and
-- metamethods, Class:is, is_subclass, properties.
local t = require "tap"
local Object = require "gilua.class"
local threading = require "threading"

local Animal = Object:extend("test.Animal")
function Animal:init(name) self.name = name end
function Animal:speak() return "..." end
function Animal:describe() return self.name .. " says " .. self:speak() end
function Animal:__tostring() return "<" .. self.name .. ">" end

local Dog = Animal:extend("test.Dog")
function Dog:init(name, breed)
  Animal.init(self, name)
  self.breed = breed
end
function Dog:speak() return "woof" end

local a = Animal("generic")
local d = Dog("rex", "collie")

t.is(a.name, "generic", "calling a class makes an instance; init ran")
t.is(a:describe(), "generic says ...", "methods")
t.is(d:describe(), "rex says woof", "a subclass overrides a method; inherited methods call it")
t.is(d.breed, "collie", "a subclass init calling the parent's init")
t.is(tostring(d), "<rex>", "metamethods are inherited (__tostring)")
t.ok(Animal:is(a) and Animal:is(d), "Animal:is(instance of Animal or Dog)")
t.ok(Dog:is(d) and not Dog:is(a), "Dog:is only for Dogs")
t.ok(Object:is(d), "everything is an Object")
t.ok(Dog:is_subclass(Animal) and not Animal:is_subclass(Dog), "is_subclass")
t.is(Dog.__super, Animal, "__super is the parent class")
t.is(Dog.__name, "test.Dog", "__name is the class name")
t.ok(not Animal:is(42) and not Animal:is("x") and not Animal:is({}), "is() on non-instances is false")

-- a metamethod defined on the parent after the subclass was made reaches it
function Animal:__len() return #self.name end
t.is(#d, 3, "a metamethod added later to the parent reaches the subclass")

-- an anonymous subclass keeps its parent's name
local Puppy = Dog:extend()
local p = Puppy("bit", "pug")
t.is(p:speak(), "woof", "anonymous subclass inherits")
t.ok(Dog:is(p), "an anonymous subclass instance is a Dog")

-- __close is inherited, so <close> works with class instances
do
  local Res = Object:extend()
  local closed = 0
  function Res:__close() closed = closed + 1 end
  local SubRes = Res:extend()
  do local _ <close> = SubRes() end
  t.is(closed, 1, "__close is inherited; <close> calls it")
end

-- properties
do
  local Temp = Object:extend("test.Temp")
  function Temp:init(c) self._c = c end
  Temp:property("celsius", function(self) return self._c end,
                function(self, v) self._c = v end)
  Temp:property("fahrenheit", function(self) return self._c * 9 / 5 + 32 end)
  local x = Temp(100)
  t.is(x.fahrenheit, 212.0, "a property getter")
  x.celsius = 0
  t.is(x.fahrenheit, 32.0, "a property setter")
  t.raises(function() x.fahrenheit = 1 end, AttributeError,
           "writing a property without a setter: AttributeError")
  local Sub = Temp:extend()
  t.is(Sub(10).celsius, 10, "properties are inherited")
  x.other = 5
  t.is(x.other, 5, "plain fields still work on a class with properties")
end

-- modules' classes are extendable the same way
do
  local MyEvent = threading.Event:extend()
  function MyEvent:set_twice() self:set(); self:set() end
  local e = MyEvent()
  e:set_twice()
  t.ok(e:is_set() and threading.Event:is(e), "a subclass of threading.Event")
  local MyErr = ValueError:extend("test.MyErr")
  t.ok(ValueError:is(MyErr("m")) and Exception:is(MyErr("m")), "a subclass of ValueError")
end

t.done_testing()
