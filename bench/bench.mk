# bench/bench.mk: the benchmark program (included by the Makefile; `make bench`
# runs bench/run.sh, which builds $(BUILD)/bench/taskq_bench through this rule).
# It links the static library like any libtaskq user, plus hiredis for INFO.
BENCH_BIN := $(BUILD)/bench/taskq_bench

$(BENCH_BIN): $(OBJ)/bench/taskq_bench.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) $(PKG_LIBS) -lpthread

$(OBJ)/bench/taskq_bench.o: CFLAGS_ALL += -Iclient
