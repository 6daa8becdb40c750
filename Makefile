# gilua: Lua 5.4 (the system library) with a Global Interpreter Lock.
#
#   make            build/gilua, build/libgilua.a, build/libgilua.so
#   make demo       build, then run the headline demo
#   make test       the whole test suite (TAP, through prove)
#   make bench      benchmarks beside CPython and stock lua5.4
#   make stress     10 million queue items and 2,000 processes (tests/stress)
#   make tsan/asan  the test suite on a ThreadSanitizer/AddressSanitizer build
#   make fuzz       fuzz the serializer's decoder (FUZZ_TIME seconds)
#   make deps       install the Debian packages the build and tests need
#   make deps-san   ... and those make tsan/asan need (clang)
#   make install PREFIX=/usr/local

BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= cc
CFLAGS  ?= -O2 -g
SAN     ?=
WARN    := -Wall -Wextra
# Lua's flags are asked of pkg-config when a recipe first needs them, not
# when this file is read: `make deps demo` installs liblua5.4-dev (and
# pkg-config) before the first compilation, in the same run. Each is then
# kept (the eval), so pkg-config runs once per make.
LUA_CFLAGS = $(eval LUA_CFLAGS := $$(shell pkg-config --cflags lua5.4 2>/dev/null))$(LUA_CFLAGS)
LUA_LIBS   = $(eval LUA_LIBS := $$(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4))$(LUA_LIBS)
# OpenSSL's libcrypto (libssl-dev): HMAC-SHA256 for multiprocessing's
# authentication keys; its headers are asked for the same way. It is not
# linked: stdlib/multiprocessing/auth.c loads it at its first digest.
CRYPTO_CFLAGS = $(eval CRYPTO_CFLAGS := $$(shell pkg-config --cflags libcrypto 2>/dev/null))$(CRYPTO_CFLAGS)
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Ivm -Igil $(LUA_CFLAGS) $(CRYPTO_CFLAGS) $(GILUA_DEFS)
ALL_CFLAGS = $(CFLAGS) $(WARN) $(SAN) -fPIC -pthread -fvisibility=hidden
SYSLIBS   = -lreadline -lpthread -lm -ldl
LDLIBS   = $(LUA_LIBS) $(SYSLIBS)
# The gilua command carries the system's static liblua5.4.a, as Debian's
# lua5.4 does (whole, and exported by -E, for C modules): no PIC code and no
# PLT in the interpreter loop, no library to load. Measured on bench/loop.lua
# (min of 9 alternating runs): 1.01-1.02x stock lua5.4 with the shared
# library, 0.97-1.00x static; gilua -e '' 1.21 -> 1.14 ms. Without the
# static library, the shared one. Looked for when first needed, as above.
comma := ,
LUA_STATIC = $(eval LUA_STATIC := $$(wildcard $$(shell pkg-config --variable=libdir lua5.4 2>/dev/null)/liblua5.4.a))$(LUA_STATIC)
EXE_LUA = $(if $(LUA_STATIC),-Wl$(comma)--whole-archive $(LUA_STATIC) -Wl$(comma)--no-whole-archive,$(LUA_LIBS))

# What `make deps` installs: the build and `make test`, nothing else (the
# README says what each one is for; clang and libclang-rt-dev build the
# fuzz target that make test runs). make tsan/asan also need SAN_PKGS
# (`make deps-san`).
DEB_PKGS := build-essential pkg-config liblua5.4-dev libreadline-dev \
            libssl-dev perl python3 lua5.4 chromium clang libclang-rt-dev \
            libopenmpi-dev openmpi-bin
SAN_PKGS := clang libclang-rt-dev

# stdlib/mpi/*.c is not part of libgilua: it is the loadable module below.
MOD_SRC  := $(sort $(wildcard stdlib/mpi/*.c))
LIB_SRC  := $(filter-out $(MOD_SRC),$(sort $(wildcard vm/*.c gil/*.c stdlib/*.c stdlib/*/*.c)))
LUA_SRC  := $(sort $(wildcard vm/lua/*.lua stdlib/*/*.lua))
REPL_SRC := $(sort $(wildcard repl/*.c))
CTEST_SRC := $(sort $(wildcard tests/c/*.c))

RES_SRC  := $(sort $(wildcard gil/*.html))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/embedded.o \
            $(BUILD)/obj/gen/resources.o
REPL_OBJ := $(REPL_SRC:%.c=$(BUILD)/obj/%.o)
CTESTS   := $(CTEST_SRC:tests/c/%.c=$(BUILD)/tests/%.t)
HEADERS  := $(wildcard include/*.h vm/*.h gil/*.h stdlib/*/*.h)
# C hosts in samples/embed/, built as any host is: against an installed
# libgilua (staged under $(BUILD)/stage) with pkg-config.
STAGE    := $(CURDIR)/$(BUILD)/stage
EMBED_SAMPLES := $(patsubst samples/embed/%.c,$(BUILD)/samples/embed/%,\
                   $(wildcard samples/embed/*.c))
# C modules in samples/extension/, built as any C module is: with
# `pkg-config --cflags gilua` and no libraries (the gilua that requires
# them provides Lua's and gilua's functions).
EXT_SAMPLES := $(patsubst samples/extension/%.c,$(BUILD)/samples/extension/%.so,\
                 $(wildcard samples/extension/*.c))

.PHONY: all mpi demo embed-samples test check-tests stress bench tsan asan fuzz deps deps-san install clean

all: $(BUILD)/gilua $(BUILD)/libgilua.a $(BUILD)/libgilua.so $(EXT_SAMPLES) mpi

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

# Lua sources that are part of the runtime are compiled into the binary,
# precompiled by the system's Lua (the one gilua runs on) as well.
$(BUILD)/embedgen: tools/embedgen.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -Wall -Wextra $(LUA_CFLAGS) $< -o $@ $(LUA_LIBS)

$(BUILD)/gen/embedded.c: $(BUILD)/embedgen $(LUA_SRC)
	@mkdir -p $(dir $@)
	$(BUILD)/embedgen $(LUA_SRC) > $@.tmp && mv $@.tmp $@

# ... and so are other files the library needs at run time (the GIL
# timeline page).
$(BUILD)/gen/resources.c: $(BUILD)/embedgen $(RES_SRC)
	@mkdir -p $(dir $@)
	$(BUILD)/embedgen -r $(RES_SRC) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libgilua.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libgilua.so: $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libgilua.so $^ -o $@ $(LDLIBS)

$(BUILD)/gilua: $(REPL_OBJ) $(BUILD)/libgilua.a
	$(CC) $(ALL_CFLAGS) -Wl,-E $(REPL_OBJ) $(BUILD)/libgilua.a -o $@ $(EXE_LUA) $(SYSLIBS)

# require "mpi": its C half _mpi is a module of its own over the system's
# MPI (pkg-config ompi-c or mpi), loaded at run time from lib/gilua/ beside
# gilua (stdlib/gilua_stdlib.c adds a searcher for that folder), so that
# gilua itself does not link MPI. Built when MPI is found, asked for when
# the recipe runs (so `make deps all` builds it in one run). Like any Lua C
# module it does not link Lua: the symbols are gilua's.
MPI_PC    = $(eval MPI_PC := $$(shell pkg-config --exists ompi-c 2>/dev/null && echo ompi-c || \
              { pkg-config --exists mpi 2>/dev/null && echo mpi; }))$(MPI_PC)
MPI_MOD  := $(BUILD)/lib/gilua/_mpi.so

mpi: $(BUILD)/gilua
	@if [ -n "$(MPI_PC)" ]; then $(MAKE) --no-print-directory $(MPI_MOD); \
	else echo "MPI not found (make deps installs Open MPI): building without require \"mpi\""; fi

$(BUILD)/obj/stdlib/mpi/%.o: stdlib/mpi/%.c include/gilua.h $(wildcard stdlib/mpi/*.h)
	@mkdir -p $(dir $@)
	$(CC) -Iinclude $(LUA_CFLAGS) $$(pkg-config --cflags $(MPI_PC)) $(CFLAGS) $(WARN) $(SAN) \
	  -fPIC -pthread -c $< -o $@

$(MPI_MOD): $(MOD_SRC:%.c=$(BUILD)/obj/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -shared $^ -o $@ $$(pkg-config --libs $(MPI_PC))

$(BUILD)/tests/%.t: tests/c/%.c $(BUILD)/libgilua.a $(HEADERS) $(wildcard tests/c/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $< $(BUILD)/libgilua.a -o $@ $(LDLIBS)

$(STAGE)/lib/pkgconfig/gilua.pc: $(BUILD)/gilua $(BUILD)/libgilua.a \
    $(BUILD)/libgilua.so include/gilua.h tools/gilua.pc.in
	$(MAKE) --no-print-directory install PREFIX=$(STAGE) DESTDIR=

$(BUILD)/samples/embed/%: samples/embed/%.c $(STAGE)/lib/pkgconfig/gilua.pc
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(SAN) -pthread $< -o $@ \
	  $$(PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config --cflags --libs gilua) \
	  -Wl,-rpath,$(STAGE)/lib

embed-samples: $(EMBED_SAMPLES)

$(BUILD)/samples/extension/%.so: samples/extension/%.c $(STAGE)/lib/pkgconfig/gilua.pc
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(SAN) -shared -fPIC $< -o $@ \
	  $$(PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config --cflags gilua)

demo: all
	./$(BUILD)/gilua samples/demo.lua

# The decoder's fuzz target (tests/fuzz/decode.c): libFuzzer with
# AddressSanitizer and UBSan, the serializer compiled in with coverage, the
# rest of the library taken from the build's archive, or, in a
# ThreadSanitizer build (which cannot run libFuzzer), from an ASan build of
# its own. Its seeds are real messages, written by tests/fuzz/seeds.lua.
FUZZ_CC  ?= clang
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_TIME ?= 600
FUZZ_BIN := $(BUILD)/fuzz/decode
FUZZ_SEEDS := $(BUILD)/fuzz/seeds
FUZZ_LIB := $(if $(findstring thread,$(SAN)),$(BUILD)/fuzz/asan/libgilua.a,$(BUILD)/libgilua.a)

$(BUILD)/fuzz/asan/libgilua.a: $(LIB_SRC) $(LUA_SRC) $(HEADERS)
	$(MAKE) --no-print-directory BUILD=$(BUILD)/fuzz/asan CC=$(FUZZ_CC) \
	  CFLAGS="-O1 -g" SAN="-fsanitize=address,undefined" GILUA_DEFS= $@

$(FUZZ_BIN): tests/fuzz/decode.c stdlib/multiprocessing/serialize.c \
    $(FUZZ_LIB) $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -O1 -g $(FUZZ_SAN) -pthread tests/fuzz/decode.c \
	  stdlib/multiprocessing/serialize.c $(FUZZ_LIB) -o $@ $(LDLIBS)

$(FUZZ_SEEDS)/.done: tests/fuzz/seeds.lua $(BUILD)/gilua
	rm -rf $(FUZZ_SEEDS)
	$(BUILD)/gilua tests/fuzz/seeds.lua $(FUZZ_SEEDS)
	touch $@

# The corpus grows in $(BUILD)/fuzz/corpus from one run to the next.
fuzz: $(FUZZ_BIN) $(FUZZ_SEEDS)/.done
	@mkdir -p $(BUILD)/fuzz/corpus
	$(FUZZ_BIN) -max_total_time=$(FUZZ_TIME) -max_len=8192 -timeout=10 \
	  -print_final_stats=1 $(FUZZ_ARGS) $(BUILD)/fuzz/corpus $(FUZZ_SEEDS)

# Lua test files are run by the gilua under test (found first on PATH);
# C tests are TAP executables. tests/fuzz_decode.lua runs a short fuzz.
test: all $(CTESTS) $(EMBED_SAMPLES) $(FUZZ_BIN) $(FUZZ_SEEDS)/.done
	PATH="$(CURDIR)/$(BUILD):$$PATH" GILUA="$(CURDIR)/$(BUILD)/gilua" \
	  GILUA_BUILD="$(CURDIR)/$(BUILD)" \
	  LUA_PATH="$(CURDIR)/tests/?.lua;;" prove $(PROVE_FLAGS) \
	  $(sort $(wildcard tests/*.lua)) $(CTESTS)

# Not part of test: minutes, not seconds. STRESS_SCALE=0.1 for a short run.
stress: all
	PATH="$(CURDIR)/$(BUILD):$$PATH" GILUA="$(CURDIR)/$(BUILD)/gilua" \
	  LUA_PATH="$(CURDIR)/tests/?.lua;;" TAP_TIMEOUT=900 prove $(PROVE_FLAGS) \
	  $(sort $(wildcard tests/stress/*.lua))

# The floors the table divides by include a C program (bench/run.py).
$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -pthread $< -o $@

bench: all $(BUILD)/bench/floor_thread_start
	python3 bench/run.py --gilua ./$(BUILD)/gilua --floors ./$(BUILD)/bench $(BENCH_FLAGS)

# ThreadSanitizer: drop requests are polled by a count hook there instead of
# being sent as a signal, which TSan cannot deliver to a CPU-bound Lua loop
# (see gil/gil_signal.c).
# Thread leaks are not reported: a daemon thread is never joined (Python's
# rule), and a process that ends with os.exit or in a fork child leaves its
# finished threads unjoined, as CPython's does.
tsan:
	TSAN_OPTIONS="report_thread_leaks=0 $$TSAN_OPTIONS" \
	  $(MAKE) BUILD=build-tsan CC=clang CFLAGS="-O1 -g" SAN="-fsanitize=thread" \
	  GILUA_DEFS="-DGIL_POLL_HOOK" \
	  PROVE_FLAGS="$(PROVE_FLAGS)" test

# UndefinedBehaviorSanitizer is fatal: a report stops the test that made it.
asan:
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) BUILD=build-asan CC=clang CFLAGS="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  PROVE_FLAGS="$(PROVE_FLAGS)" test

# A package counts as present only when dpkg says "install ok installed"
# (a removed package can linger in dpkg's database in another state).
# With -j, nothing is compiled before deps is done when both are asked for.
deps:
	@$(call install_pkgs,$(DEB_PKGS))

deps-san:
	@$(call install_pkgs,$(SAN_PKGS))

install_pkgs = missing=""; for p in $(1); do \
	  [ "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" = \
	    "install ok installed" ] || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else echo "all the packages are installed:$(strip $(1))"; fi

ifneq ($(filter deps,$(MAKECMDGOALS)),)
$(BUILD)/embedgen $(LIB_OBJ) $(REPL_OBJ) $(CTESTS): | deps
endif

install: $(BUILD)/gilua $(BUILD)/libgilua.a $(BUILD)/libgilua.so
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/gilua $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libgilua.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libgilua.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/gilua.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' tools/gilua.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/gilua.pc
	if [ -f $(MPI_MOD) ]; then install -d $(DESTDIR)$(PREFIX)/lib/gilua && \
	  install -m 755 $(MPI_MOD) $(DESTDIR)$(PREFIX)/lib/gilua/; fi

clean:
	rm -rf build build-tsan build-asan
