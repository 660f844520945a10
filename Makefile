# fpesa — build, run and test.
#
# Layout the rules below rely on (add files, not rules):
#   common/*.c                 -> build/lib/libfpesa.a (linked into every program)
#   mapper/*.c                 -> build/bin/restmapper   (main() lives in main.c)
#   liveupdate/*.c             -> build/bin/liveupdate   (main() lives in main.c)
#   handlers/host/*.c          -> build/bin/handler      (main() lives in main.c)
#   handlers/<name>/*.c        -> build/plugins/<name>.so (every folder but host/ and lib/)
#   handlers/lib/*.c           -> compiled into every plugin (C that plugins share)
#   tests/unit/<dir>/test_*.c  -> build/tests/unit/<dir>/test_* (Criterion), linked
#                                 with <dir>'s objects minus main.o and libfpesa.a
#                                 (<dir> may be two levels: handlers/host)
#   tests/plugins/<name>/*.c   -> build/tests/plugins/<name>.so (deliberately broken
#                                 plugins for the host's tests)

SHELL := /bin/bash
BUILD ?= build
CC ?= cc
# The test, up and asan scripts look at these to decide which build to use.
export BUILD

PKGS := libmicrohttpd librabbitmq yaml-0.1 jansson libpq libwebsockets libpcre2-8 libcurl vips libjwt libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CRIT_LIBS := $(shell pkg-config --libs criterion 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes -Werror
OPT ?= -O2 -g
SAN ?=
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -fPIC $(OPT) $(WARN) $(SAN) -Iinclude -Icommon \
              $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(SAN) -Wl,--as-needed $(LDFLAGS)
LIBS_ALL := $(PKG_LIBS) -lpthread -ldl -lm

srcs = $(sort $(wildcard $(1)/*.c))
objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

COMMON_OBJS := $(call objs,$(call srcs,common))
MAPPER_OBJS := $(call objs,$(call srcs,mapper))
LIVE_OBJS := $(call objs,$(call srcs,liveupdate))
HOST_OBJS := $(call objs,$(call srcs,handlers/host))

# handlers/lib/ is C every plugin may use; it is compiled into each plugin.
PLUGIN_LIB_OBJS := $(call objs,$(call srcs,handlers/lib))
PLUGIN_DIRS := $(filter-out handlers/host handlers/lib,$(patsubst %/,%,$(sort $(dir $(wildcard handlers/*/*.c)))))
PLUGINS := $(patsubst handlers/%,$(BUILD)/plugins/%.so,$(PLUGIN_DIRS))
TEST_PLUGIN_DIRS := $(patsubst %/,%,$(sort $(dir $(wildcard tests/plugins/*/*.c))))
TEST_PLUGINS := $(patsubst tests/plugins/%,$(BUILD)/tests/plugins/%.so,$(TEST_PLUGIN_DIRS))

PROGRAMS := $(if $(MAPPER_OBJS),$(BUILD)/bin/restmapper) \
            $(if $(LIVE_OBJS),$(BUILD)/bin/liveupdate) \
            $(if $(HOST_OBJS),$(BUILD)/bin/handler)

UNIT_SRCS := $(sort $(wildcard tests/unit/*/test_*.c tests/unit/*/*/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))

.PHONY: all deps up down test asan check docs bench faults fuzz clean format unit-bins

all: $(PROGRAMS) $(PLUGINS) $(TEST_PLUGINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/lib/libfpesa.a: $(COMMON_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/restmapper: $(MAPPER_OBJS) $(BUILD)/lib/libfpesa.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(BUILD)/bin/liveupdate: $(LIVE_OBJS) $(BUILD)/lib/libfpesa.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# The host exports nothing to plugins: they receive a table of services instead.
$(BUILD)/bin/handler: $(HOST_OBJS) $(BUILD)/lib/libfpesa.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# A plugin is every .c of its folder; it links the libraries it uses itself
# (libpq, jansson), never the host.
# Objects reached through pattern rules are kept, not deleted as intermediates.
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(call objs,$$(call srcs,handlers/%)) $(PLUGIN_LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(BUILD)/tests/plugins/%.so: $$(call objs,$$(call srcs,tests/plugins/%))
	@mkdir -p $(@D)
	$(CC) -shared $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# A unit test links the objects of the folder it tests (all but main.o).
unit_dir_objs = $(filter-out %/main.o,$(call objs,$(call srcs,$(1))))
unit_src_dir = $(patsubst %/,%,$(dir $(1)))
# A test of a plugin's code also links handlers/lib/, as the plugin does.
unit_plugin_lib = $(if $(filter handlers/%,$(call unit_src_dir,$(1))),$(PLUGIN_LIB_OBJS))
$(BUILD)/tests/unit/%: tests/unit/%.c $$(call unit_dir_objs,$$(call unit_src_dir,$$*)) $$(call unit_plugin_lib,$$*) $(BUILD)/lib/libfpesa.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -DFPESA_SOURCE_DIR='"$(CURDIR)"' -o $@ $^ $(LDFLAGS_ALL) $(CRIT_LIBS) $(LIBS_ALL)

unit-bins: $(UNIT_BINS)

deps:
	@scripts/deps.sh

# make up CONFIG=examples/timers/endpoints.yaml runs another system from its file.
up: deps
	@$(MAKE) --no-print-directory all
	@$(if $(CONFIG),FPESA_CONFIG=$(CONFIG) )scripts/up.sh

down:
	@scripts/down.sh

# Everything the suites need is built here; scripts/test.sh runs them against
# its own throwaway servers.
test: deps
	@$(MAKE) --no-print-directory all unit-bins
	@scripts/test.sh

asan:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory BUILD=build/asan OPT='-O1 -g -fno-omit-frame-pointer' \
	    SAN='-fsanitize=address,undefined -fno-sanitize-recover=all' all unit-bins
	@BUILD=build/asan FPESA_SANITIZED=1 scripts/test.sh

check: test
	@scripts/check.sh

docs: deps
	@scripts/docs.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@scripts/bench.sh

faults: deps
	@$(MAKE) --no-print-directory all
	@FPESA_FAULTS_FULL=1 scripts/faults.sh

fuzz: deps
	@scripts/fuzz.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
