SHELL := /bin/bash
# treaty build.  One Makefile, no generated parts: every .c under src/ is
# part of the library except src/cli/main.c; every tests/unit/test_*.c is
# its own cmocka binary; every tests/fuzz/fuzz_*.c is a libFuzzer target.
#
#   make            ./treaty
#   make check      unit tests + integration tests (pytest) on ./treaty
#   make san        the same suite on an ASan+UBSan build
#   make fuzz       each fuzz target for FUZZ_SECONDS (default 20)
#   make bench      bench/run (treaty vs nginx vs HAProxy)
#   make demo       scripts/demo

CC ?= cc
BUILD ?= build
PYTHON ?= /usr/bin/python3
FUZZ_SECONDS ?= 20

LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp

WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
       -Wmissing-prototypes -Wno-unused-parameter
BASE_CFLAGS = -std=c17 -D_GNU_SOURCE -g -O2 -Isrc -I$(LLHTTP_INC) \
              -fno-strict-aliasing -pthread
CFLAGS ?=
LDFLAGS ?=
LIBS = -luv -ljansson -lyaml -lsqlite3 -lssl -lcrypto -lcurl -lxxhash -lz \
       -lpthread -lm

ifeq ($(SAN),1)
  BUILD = build-san
  BASE_CFLAGS += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
                 -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif

LIB_SRC = $(filter-out src/cli/main.c, \
            $(wildcard src/core/*.c src/config/*.c src/net/*.c \
                       src/store/*.c src/cli/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
CORE_OBJ = $(filter $(BUILD)/src/core/%, $(LIB_OBJ))
LLHTTP_OBJ = $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o \
             $(BUILD)/llhttp/llhttp.o
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)

TREATY = $(if $(filter 1,$(SAN)),$(BUILD)/treaty,treaty)

.PHONY: all check unit integration san fuzz bench demo clean lint deps

all: $(TREATY)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(WARN) $(CFLAGS) -MMD -MP -c $< -o $@

# llhttp comes from Debian's node-llhttp sources with its own, milder flags:
# it is not our code and is not held to our warning set.
$(BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -O2 -g -I$(LLHTTP_INC) $(filter -fsanitize%,$(BASE_CFLAGS)) \
	    -c $< -o $@

$(BUILD)/libtreaty.a: $(LIB_OBJ) $(LLHTTP_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(TREATY): $(BUILD)/src/cli/main.o $(BUILD)/libtreaty.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtreaty.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(WARN) -Wno-missing-prototypes $(CFLAGS) \
	    -Itests/unit $< -o $@ $(LDFLAGS) $(BUILD)/libtreaty.a $(LIBS) -lcmocka

unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do \
	    echo "== $$t"; $$t || fail=1; done; \
	test $$fail = 0

integration: $(TREATY)
	TREATY_BIN=$(abspath $(TREATY)) $(PYTHON) -m pytest -q tests/integration

# `make check` works alone on a fresh machine: it installs what is missing
# first (install-deps is quick when everything is there).
check:
	scripts/install-deps
	$(MAKE) unit integration

# The whole suite under ASan+UBSan.  Integration tests see
# TREATY_SANITIZER=1 and skip their timing assertions.
san:
	$(MAKE) SAN=1 build-san/treaty unit
	TREATY_BIN=$(abspath build-san/treaty) TREATY_SANITIZER=1 \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(PYTHON) -m pytest -q tests/integration

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang \
	    CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
	    build-fuzz/libtreaty.a
	@mkdir -p build-fuzz/fuzz
	@set -e; for f in $(FUZZ_SRC); do \
	    n=$$(basename $$f .c); \
	    clang $(BASE_CFLAGS) -fsanitize=fuzzer,address,undefined \
	        $$f build-fuzz/libtreaty.a -o build-fuzz/fuzz/$$n $(LIBS); \
	    mkdir -p build-fuzz/corpus/$$n; \
	    echo "== fuzz $$n for $(FUZZ_SECONDS)s"; \
	    build-fuzz/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) \
	        -artifact_prefix=build-fuzz/ \
	        -print_final_stats=1 build-fuzz/corpus/$$n \
	        tests/fuzz/corpus/$$n 2>&1 | tail -n 12; \
	    test $${PIPESTATUS[0]} = 0; \
	done

deps:
	scripts/install-deps

bench: $(TREATY)
	bench/run

demo:
	scripts/demo

lint:
	@! grep -nE '\b(sprintf|strcpy|strcat|atoi|gets)\(' \
	    $$(git ls-files 'src/*.c' 'src/*.h') || \
	    (echo "banned call above" && false)

clean:
	rm -rf build build-san build-fuzz treaty

-include $(LIB_OBJ:.o=.d) $(BUILD)/src/cli/main.d
