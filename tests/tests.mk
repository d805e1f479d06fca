# Test binaries (included by the top-level Makefile).
#   tests/unit/test_*.c         cmocka unit tests, linked with the internal objects
#   tests/integration/test_*.c  cmocka integration tests: real redis-server and
#                               real taskq-worker, started by tests/harness.c;
#                               shared fixtures in tests/taskq_fx.c
#   tests/tasks/test_tasks.c    tasks the integration tests --load into a worker
# tests/run.sh runs them all and prints the final "N passed, N failed" line.

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/%.c=$(BUILD)/tests/%)
INTEG_BINS := $(INTEG_SRC:tests/%.c=$(BUILD)/tests/%)
HARNESS_OBJ := $(OBJ)/tests/harness.o
TEST_FX_OBJ := $(OBJ)/tests/taskq_fx.o
TEST_TASKS := $(BUILD)/tests/libtest_tasks.so
DOC_EXAMPLES := $(patsubst docs/examples/%.c,$(BUILD)/examples/%,$(filter-out docs/examples/example_tasks.c,$(wildcard docs/examples/*.c)))

$(BUILD)/tests/unit/%: tests/unit/%.c $(CORE_OBJ) $(WORKER_OBJ) $(CLIENT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iworker -o $@ $< $(WORKER_OBJ) $(CLIENT_OBJ) $(CORE_OBJ) \
	  -Wl,--export-dynamic $(LDFLAGS_ALL) $(CMOCKA_LIBS) $(PKG_LIBS) -ldl -lpthread

$(BUILD)/tests/integration/%: tests/integration/%.c $(TEST_FX_OBJ) $(HARNESS_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iclient -Itests -o $@ $< $(TEST_FX_OBJ) $(HARNESS_OBJ) $(LIBA) \
	  $(LDFLAGS_ALL) $(CMOCKA_LIBS) $(PKG_LIBS)

# Tasks the integration tests load into a real worker (--load).
$(TEST_TASKS): tests/tasks/test_tasks.c worker/taskq_worker.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iworker -shared -o $@ $< $(LDFLAGS_ALL)

# Examples in docs/ are compiled against the installed-style headers only.
$(BUILD)/examples/%: docs/examples/%.c $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iclient -o $@ $< $(LIBA) $(LDFLAGS_ALL) $(PKG_LIBS)

.PHONY: tests-build
tests-build: $(UNIT_BINS) $(INTEG_BINS) $(DOC_EXAMPLES) $(TEST_TASKS)

# One build's unit and integration tests (`make check`, `make asan`).
check: all tests-build
	@sh tests/run.sh $(BUILD)
