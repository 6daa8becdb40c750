/*
** gilua_modules.c: the module registry. C modules and the embedded Lua
** sources are found by `require` through package.preload, so the binary
** needs no file at run time, and a user's own module path still works
** for everything else. The C modules are those of the layer above (stdlib/gilua_stdlib.c),
** which hands their list over.
*/
#include <stdio.h>
#include <string.h>

#include "gilua_vm.h"

/* Made by tools/embedgen.c: each module's source and its precompiled
** chunk, and the Lua release that compiled them. */
struct gilua_embedded {
  const char *name, *path, *src, *bc;
  size_t len, bclen;
};
extern const struct gilua_embedded gilua_embedded[];
extern const char gilua_embedded_release[];


static const struct gilua_embedded *find (const char *name) {
  const struct gilua_embedded *e;
  for (e = gilua_embedded; e->name; e++)
    if (strcmp(e->name, name) == 0) return e;
  return NULL;
}


/*
** The precompiled chunk is used when the Lua library running now is the
** one that compiled it (bytecode changes between releases, and loading
** another release's is not always refused); else the source is compiled.
*/
static int bytecode_ok (void) {
  static int ok = -1;   /* -1: not checked yet; the answer never changes */
  if (ok < 0) ok = strcmp(lua_ident, gilua_embedded_release) == 0;
  return ok;
}


int gilua_loadembedded (lua_State *L, const char *modname) {
  const struct gilua_embedded *e = find(modname);
  char chunkname[256];
  int status;
  if (e == NULL) return luaL_error(L, "no embedded module '%s'", modname);
  snprintf(chunkname, sizeof chunkname, "@%s", e->path);
  if (bytecode_ok())
    status = luaL_loadbufferx(L, e->bc, e->bclen, chunkname, "b");
  else
    status = luaL_loadbufferx(L, e->src, e->len, chunkname, "t");
  if (status != LUA_OK) return lua_error(L);
  return 1;
}


/* package.preload loader: called as loader(name, extra). The module it
** loads is its upvalue; 'name' is what the chunk gets as its first
** argument, "__main__" when `gilua -m` runs the module as the program. */
static int embedded_loader (lua_State *L) {
  const char *name = lua_tostring(L, lua_upvalueindex(1));
  gilua_loadembedded(L, name);
  if (lua_isnoneornil(L, 1))
    lua_pushvalue(L, lua_upvalueindex(1));
  else
    lua_pushvalue(L, 1);
  lua_pushstring(L, find(name)->path);
  lua_call(L, 2, 1);
  return 1;
}


/* gilua.class gets the table where named classes are registered (C code
** and the serializer find classes there by name). */
static int class_loader (lua_State *L) {
  gilua_loadembedded(L, "gilua.class");
  lua_getfield(L, LUA_REGISTRYINDEX, GILUA_CLASSES_KEY);
  lua_call(L, 1, 1);
  return 1;
}


void gilua_preload (lua_State *L, const luaL_Reg *cmodules) {
  const luaL_Reg *m;
  const struct gilua_embedded *e;
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, GILUA_CLASSES_KEY);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (m = cmodules; m->name; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name);
  }
  /* vm's own: the helper layer's rules for the Lua modules */
  lua_pushcfunction(L, luaopen_gilua_core);
  lua_setfield(L, -2, "_gilua");
  for (e = gilua_embedded; e->name; e++) {
    lua_pushstring(L, e->name);
    lua_pushcclosure(L, embedded_loader, 1);
    lua_setfield(L, -2, e->name);
  }
  lua_pushcfunction(L, class_loader);
  lua_setfield(L, -2, "gilua.class");
  lua_pop(L, 1);
}
