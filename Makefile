# taskq: one non-recursive Makefile; every output goes under $(BUILD).
# `make test` and `make demo` first install missing Debian packages
# (.ci/deps.sh), then re-enter make so pkg-config sees them.

VERSION   := 0.1.0
SOVERSION := 0
PREFIX    ?= /usr/local
DESTDIR   ?=
BUILD     ?= build
CC        ?= cc

PKGS      := hiredis libevent libevent_pthreads jansson yajl
# libcrypto: its headers only; tq_sign loads the library when a signing key
# is configured (broker/tq_sign.c says why).
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) libcrypto 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wwrite-strings -Wcast-qual -Wvla -Werror
OPT  ?= -O2 -g
SAN  ?=
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden $(OPT) $(SAN) $(WARN) \
              -I. -I$(BUILD)/gen -DTASKQ_VERSION=\"$(VERSION)\" $(PKG_CFLAGS) $(CFLAGS) \
              -MMD -MP
LDFLAGS_ALL := $(SAN) $(LDFLAGS)

OBJ := $(BUILD)/obj

COMMON_SRC := $(wildcard common/*.c)
BROKER_SRC := $(wildcard broker/*.c)
LUA_SRC    := $(sort $(wildcard broker/lua/*.lua))
GEN_SCRIPTS := $(BUILD)/gen/tq_scripts_gen.c
CLIENT_LIB_SRC := client/taskq.c
WORKER_SRC := $(filter-out worker/main.c,$(wildcard worker/*.c))

COMMON_OBJ := $(COMMON_SRC:%.c=$(OBJ)/%.o)
BROKER_OBJ := $(BROKER_SRC:%.c=$(OBJ)/%.o) $(OBJ)/gen/tq_scripts_gen.o
CLIENT_OBJ := $(CLIENT_LIB_SRC:%.c=$(OBJ)/%.o)
WORKER_OBJ := $(WORKER_SRC:%.c=$(OBJ)/%.o)
CORE_OBJ   := $(COMMON_OBJ) $(BROKER_OBJ)

LIBA  := $(BUILD)/libtaskq.a
LIBSO := $(BUILD)/libtaskq.so.$(VERSION)
LIBSONAME := libtaskq.so.$(SOVERSION)
WORKER_BIN := $(BUILD)/taskq-worker
SUBMIT_BIN := $(BUILD)/taskq-submit
PCFILE := $(BUILD)/taskq.pc
EXAMPLE_TASKS := $(BUILD)/libexample_tasks.so

.PHONY: all deps test check asan demo install uninstall clean format lint bench fuzz test-compose
all: $(LIBA) $(LIBSO) $(WORKER_BIN) $(SUBMIT_BIN) $(PCFILE) $(EXAMPLE_TASKS)

$(GEN_SCRIPTS): broker/gen_scripts.sh $(LUA_SRC) $(wildcard broker/lua/lib/*.lua)
	@mkdir -p $(dir $@)
	sh broker/gen_scripts.sh $@ $(LUA_SRC)

$(OBJ)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Ibroker -c $< -o $@

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(LIBA): $(CLIENT_OBJ) $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIBSO): $(CLIENT_OBJ) $(CORE_OBJ)
	$(CC) -shared -Wl,-soname,$(LIBSONAME) -o $@ $^ $(LDFLAGS_ALL) $(PKG_LIBS)
	ln -sf libtaskq.so.$(VERSION) $(BUILD)/$(LIBSONAME)
	ln -sf libtaskq.so.$(VERSION) $(BUILD)/libtaskq.so

# The worker exports the task-author API (TASKQ_WORKER_EXPORT symbols only,
# everything else is hidden) so task libraries loaded with --load can call it.
$(WORKER_BIN): $(OBJ)/worker/main.o $(WORKER_OBJ) $(CORE_OBJ)
	$(CC) -o $@ $^ -Wl,--export-dynamic $(LDFLAGS_ALL) $(PKG_LIBS) -ldl -lpthread

$(SUBMIT_BIN): $(OBJ)/client/taskq_submit.o $(LIBA)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) $(PKG_LIBS)

$(EXAMPLE_TASKS): docs/examples/example_tasks.c worker/taskq_worker.h
	$(CC) $(CFLAGS_ALL) -Iworker -shared -o $@ $< $(LDFLAGS_ALL)

# Regenerated whenever PREFIX changes (make install PREFIX=/usr after make).
$(PCFILE): FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: taskq' 'Description: taskq distributed task queue client library' \
	  'Version: $(VERSION)' 'Requires.private: hiredis jansson yajl' \
	  'Libs: -L$${libdir} -ltaskq' 'Cflags: -I$${includedir}' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

.PHONY: FORCE
FORCE:

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
include tests/tests.mk
-include tests/fuzz/fuzz.mk
-include bench/bench.mk

deps:
	@sh .ci/deps.sh

# The whole suite (tests/suite.sh): normal build, ASan+UBSan, valgrind, and
# the stages later issues add. Its last line is "N passed, N failed".
test: deps
	@sh tests/suite.sh

asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" check

demo: deps
	@$(MAKE) --no-print-directory all
	@sh tests/demo.sh $(BUILD)

test-compose: deps
	@sh tests/compose/run.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(WORKER_BIN) $(SUBMIT_BIN) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIBA) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIBSO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libtaskq.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(LIBSONAME)
	ln -sf libtaskq.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libtaskq.so
	install -m 644 client/taskq.h worker/taskq_worker.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(PCFILE) $(DESTDIR)$(PREFIX)/lib/pkgconfig/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/taskq-worker $(DESTDIR)$(PREFIX)/bin/taskq-submit \
	  $(DESTDIR)$(PREFIX)/lib/libtaskq.a $(DESTDIR)$(PREFIX)/lib/libtaskq.so* \
	  $(DESTDIR)$(PREFIX)/include/taskq.h $(DESTDIR)$(PREFIX)/include/taskq_worker.h \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/taskq.pc

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

lint:
	@sh .ci/lint.sh

clean:
	rm -rf build
