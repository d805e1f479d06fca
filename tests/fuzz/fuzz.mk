# libFuzzer targets (included by the top-level Makefile).
#   tests/fuzz/fuzz_<t>.c     one LLVMFuzzerTestOneInput per parser: msg, sig, url, json
#   tests/fuzz/corpus/<t>/    the seed corpus, kept small and meaningful
#
# The targets are built with clang, libFuzzer, ASan and UBSan, with the
# common/ sources compiled straight into each binary (the gcc objects under
# $(OBJ) are not reused: they carry neither coverage nor sanitizers).
#
#   make fuzz FUZZ_SECONDS=N   run every target for N seconds (default 60)
#   make fuzz-msg              one target
#   make fuzz-build            only build them
#
# Each run works on a copy of the seed corpus, $(BUILD)/fuzz/corpus-<t>, so new
# inputs never pollute the repository; crash, leak, timeout and OOM
# reproducers are written to $(BUILD)/fuzz/<t>-crash-<sha1> (etc.). Replay one
# with `$(BUILD)/fuzz/fuzz_<t> FILE`. tests/fuzz/run.sh is the suite's wrapper.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := msg sig url json
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_CFLAGS  := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer -g -O1 -std=c11 -D_GNU_SOURCE -I. \
                $(WARN) $(PKG_CFLAGS)
FUZZ_RUNOPTS := -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
FUZZ_HDRS    := $(wildcard common/*.h)

.PHONY: fuzz-build $(FUZZ_TARGETS:%=fuzz-%)

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(COMMON_SRC) $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) $(PKG_LIBS)

fuzz-build: $(FUZZ_BINS)

# One target for $(FUZZ_SECONDS) s on its corpus copy.
$(FUZZ_TARGETS:%=fuzz-%): fuzz-%: $(FUZZ_DIR)/fuzz_%
	@mkdir -p $(FUZZ_DIR)/corpus-$*
	@cp -p tests/fuzz/corpus/$*/* $(FUZZ_DIR)/corpus-$*/
	$(FUZZ_DIR)/fuzz_$* $(FUZZ_RUNOPTS) -max_total_time=$(FUZZ_SECONDS) \
	  -artifact_prefix=$(FUZZ_DIR)/$*- $(FUZZ_DIR)/corpus-$*

fuzz: $(FUZZ_TARGETS:%=fuzz-%)
