# fpesa — build, run and test.
#
# Layout the rules below rely on (add files, not rules):
#   common/*.c                 -> build/lib/libfpesa.a (linked into every program)
#   mapper/*.c                 -> build/bin/restmapper   (main() lives in main.c)
#   liveupdate/*.c             -> build/bin/liveupdate   (main() lives in main.c)
#   handlers/host/*.c          -> build/bin/handler      (main() lives in main.c)
#   handlers/<name>/*.c        -> build/plugins/<name>.so (every folder but host/ and lib/);
#                                 handlers/<name>/build.mk names its packages and
#                                 the handlers/lib/ parts it links (see below)
#   handlers/lib/<part>.c      -> C that plugins share, linked only into the
#                                 plugins that name <part>
#   tests/unit/<dir>/test_*.c  -> build/tests/unit/<dir>/test_* (Criterion), linked
#                                 with <dir>'s objects minus main.o and libfpesa.a
#                                 (<dir> may be two levels: handlers/host)
#   tests/plugins/<name>/*.c   -> build/tests/plugins/<name>.so (deliberately broken
#                                 plugins for the host's tests)
#   tests/fuzz/fuzz_<name>.c   -> build/fuzz/replay_<name> (make fuzz-replay) and
#                                 build/fuzz/fuzz_<name> (libFuzzer, make fuzz); its
#                                 first line names its sources ("// fuzz-sources: ...")
#   bench/<name>.c             -> build/bench/<name> (make bench-bins)
#
# Each program and plugin compiles with the flags of the packages it uses and
# links only their libraries: a plugin that does not touch PostgreSQL does not
# link libpq. A package pkg-config does not know stops the build of the
# targets that need it, naming the package.
SHELL := /bin/bash
BUILD ?= build
CC ?= cc
# The test, up and asan scripts look at these to decide which build to use.
export BUILD

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes -Werror
OPT ?= -O2 -g
SAN ?=
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC $(OPT) $(WARN) $(SAN) -Iinclude -Icommon $(CFLAGS)
BASE_LDFLAGS := $(SAN) -Wl,--as-needed $(LDFLAGS)
BASE_LIBS := -lpthread -ldl -lm

# ---- what each target uses (pkg-config package names) -----------------------
# common/ is linked into the three programs, so its packages join theirs.
common_PKGS := yaml-0.1 jansson libpcre2-8 librabbitmq libjwt libcrypto
restmapper_PKGS := $(common_PKGS) libmicrohttpd
liveupdate_PKGS := $(common_PKGS) libwebsockets librabbitmq
handler_PKGS := $(common_PKGS) librabbitmq libmicrohttpd
# The parts of handlers/lib/ and the packages each one needs.
lib_store_PKGS := libpq
lib_dbconn_PKGS := libpq jansson
lib_rpc_PKGS := jansson
# A plugin without a build.mk uses jansson and no handlers/lib/ part; a
# build.mk sets <name>_PKGS and <name>_LIB (parts of handlers/lib/).
plugin_default_PKGS := jansson
-include $(wildcard handlers/*/build.mk)
# The broken test plugins use nothing; the benchmarks' clients use these.
testplugin_PKGS :=
bench_PKGS := librabbitmq libpq
fuzz_PKGS := $(restmapper_PKGS)
criterion_PKGS := criterion

srcs = $(sort $(wildcard $(1)/*.c))
objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

COMMON_OBJS := $(call objs,$(call srcs,common))
MAPPER_OBJS := $(call objs,$(call srcs,mapper))
LIVE_OBJS := $(call objs,$(call srcs,liveupdate))
HOST_OBJS := $(call objs,$(call srcs,handlers/host))

PLUGIN_DIRS := $(filter-out handlers/host handlers/lib,$(patsubst %/,%,$(sort $(dir $(wildcard handlers/*/*.c)))))
PLUGIN_NAMES := $(patsubst handlers/%,%,$(PLUGIN_DIRS))
PLUGINS := $(patsubst %,$(BUILD)/plugins/%.so,$(PLUGIN_NAMES))
TEST_PLUGIN_DIRS := $(patsubst %/,%,$(sort $(dir $(wildcard tests/plugins/*/*.c))))
TEST_PLUGINS := $(patsubst tests/plugins/%,$(BUILD)/tests/plugins/%.so,$(TEST_PLUGIN_DIRS))

# A plugin's packages: its own (or the default) plus those of its lib parts.
plugin_lib = $($(1)_LIB)
# <name>_COMMON names files of common/ a plugin compiles in as well (the
# exact JSON reader: jsontext jsontext_utf8 decimal).
plugin_lib_objs = $(patsubst %,$(BUILD)/obj/handlers/lib/%.o,$(call plugin_lib,$(1))) \
                  $(patsubst %,$(BUILD)/obj/common/%.o,$($(1)_COMMON))
plugin_pkgs = $(sort $(or $($(1)_PKGS),$(plugin_default_PKGS)) $(foreach l,$(call plugin_lib,$(1)),$(lib_$(l)_PKGS)))

PROGRAMS := $(if $(MAPPER_OBJS),$(BUILD)/bin/restmapper) \
            $(if $(LIVE_OBJS),$(BUILD)/bin/liveupdate) \
            $(if $(HOST_OBJS),$(BUILD)/bin/handler)

UNIT_SRCS := $(sort $(wildcard tests/unit/*/test_*.c tests/unit/*/*/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))

# ---- pkg-config, asked once per package set ----------------------------------
# Every package some target names; which of them pkg-config knows.
ALL_PKGS := $(sort $(restmapper_PKGS) $(liveupdate_PKGS) $(handler_PKGS) $(bench_PKGS) \
              $(foreach n,$(PLUGIN_NAMES),$(call plugin_pkgs,$(n))) $(criterion_PKGS))
FOUND_PKGS := $(if $(filter clean format deps,$(MAKECMDGOALS)),$(ALL_PKGS), \
              $(foreach p,$(ALL_PKGS),$(if $(shell pkg-config --exists $(p) && echo y),$(p))))
MISSING_PKGS := $(filter-out $(FOUND_PKGS),$(ALL_PKGS))

# pkgs_of_dir DIR: the packages an object of DIR compiles with.
pkgs_of_dir = $(strip \
  $(if $(filter common,$(1)),$(common_PKGS), \
  $(if $(filter mapper,$(1)),$(restmapper_PKGS), \
  $(if $(filter liveupdate,$(1)),$(liveupdate_PKGS), \
  $(if $(filter handlers/host,$(1)),$(handler_PKGS), \
  $(if $(filter handlers/lib,$(1)),$(sort jansson $(foreach v,$(filter lib_%_PKGS,$(.VARIABLES)),$($(v)))), \
  $(if $(filter handlers/%,$(1)),$(call plugin_pkgs,$(patsubst handlers/%,%,$(1))), \
  $(if $(filter bench,$(1)),$(bench_PKGS)))))))))

# need PKGS: stops with the name of every package pkg-config does not know.
need = $(if $(filter-out $(FOUND_PKGS),$(1)),$(error $@ needs the pkg-config package(s) \
  "$(filter-out $(FOUND_PKGS),$(1))", which pkg-config does not find. Install the matching \
  -dev package (make deps installs them all), or point PKG_CONFIG_PATH at it))
# Cached per distinct package list: pkg-config runs once for each.
pkg_key = pc_$(subst $() ,_,$(sort $(1)))
pkg_cflags = $(call need,$(1))$(if $(strip $(1)),$(or $($(call pkg_key,$(1))_c),$(eval $(call pkg_key,$(1))_c := $(shell pkg-config --cflags $(1)) )$($(call pkg_key,$(1))_c)))
pkg_libs = $(call need,$(1))$(if $(strip $(1)),$(or $($(call pkg_key,$(1))_l),$(eval $(call pkg_key,$(1))_l := $(shell pkg-config --libs $(1)) )$($(call pkg_key,$(1))_l)))

obj_dir = $(patsubst $(BUILD)/obj/%/,%,$(dir $(1)))

.PHONY: all deps up up-cluster status down test asan check docs bench bench-bins faults fuzz fuzz-bins \
        fuzz-replay fuzz-replay-bins clean format unit-bins man install uninstall deb restart reload

all: $(PROGRAMS) $(PLUGINS) $(TEST_PLUGINS)

# An object compiles with the packages of the target its folder belongs to.
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(call pkg_cflags,$(call pkgs_of_dir,$(call obj_dir,$@))) -MMD -MP -c $< -o $@

$(BUILD)/lib/libfpesa.a: $(COMMON_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/restmapper: $(MAPPER_OBJS) $(BUILD)/lib/libfpesa.a
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ $(call pkg_libs,$(restmapper_PKGS)) $(BASE_LIBS)

$(BUILD)/bin/liveupdate: $(LIVE_OBJS) $(BUILD)/lib/libfpesa.a
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ $(call pkg_libs,$(liveupdate_PKGS)) $(BASE_LIBS)

# The host exports nothing to plugins: they receive a table of services instead.
$(BUILD)/bin/handler: $(HOST_OBJS) $(BUILD)/lib/libfpesa.a
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ $(call pkg_libs,$(handler_PKGS)) $(BASE_LIBS)

# A plugin is every .c of its folder plus the handlers/lib/ parts it names; it
# links the libraries it uses itself, never the host.
# Objects reached through pattern rules are kept, not deleted as intermediates.
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(call objs,$$(call srcs,handlers/%)) $$(call plugin_lib_objs,$$*)
	@mkdir -p $(@D)
	$(CC) -shared $(BASE_LDFLAGS) -o $@ $^ $(call pkg_libs,$(call plugin_pkgs,$*)) $(BASE_LIBS)

$(BUILD)/tests/plugins/%.so: $$(call objs,$$(call srcs,tests/plugins/%))
	@mkdir -p $(@D)
	$(CC) -shared $(BASE_LDFLAGS) -o $@ $^ $(BASE_LIBS)

# A unit test links the objects of the folder it tests (all but main.o) and
# uses that folder's packages; a test of a plugin's code also links the
# handlers/lib/ parts the plugin names (a test of handlers/lib/ all of them).
unit_dir_objs = $(filter-out %/main.o,$(call objs,$(call srcs,$(1))))
unit_src_dir = $(patsubst %/,%,$(dir $(1)))
unit_plugin_lib = $(strip $(if $(filter handlers/lib,$(1)),, \
  $(if $(filter-out handlers/host,$(filter handlers/%,$(1))),$(call plugin_lib_objs,$(patsubst handlers/%,%,$(1))))))
$(BUILD)/tests/unit/%: tests/unit/%.c $$(call unit_dir_objs,$$(call unit_src_dir,$$*)) $$(call unit_plugin_lib,$$(call unit_src_dir,$$*)) $(BUILD)/lib/libfpesa.a
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(call pkg_cflags,$(call pkgs_of_dir,$(call unit_src_dir,$*)) $(common_PKGS) $(criterion_PKGS)) \
	    -DFPESA_SOURCE_DIR='"$(CURDIR)"' -o $@ $^ $(BASE_LDFLAGS) \
	    $(call pkg_libs,$(call pkgs_of_dir,$(call unit_src_dir,$*)) $(common_PKGS) $(criterion_PKGS)) $(BASE_LIBS)

unit-bins: $(UNIT_BINS)

# ---- fuzz targets and benchmark clients, from the same definitions -----------
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Iinclude -Icommon \
               -DFPESA_FUZZ_CONFIG='"$(CURDIR)/endpoints.yaml"'
# The sources a target links: its first line says "// fuzz-sources: common/*.c ...".
fuzz_srcs = $(filter-out %/main.c,$(wildcard $(shell sed -n 's/.*fuzz-sources: *//p' tests/fuzz/fuzz_$(1).c | head -n 1)))
# Built in one step from sources, so any header of theirs is a dependency.
FUZZ_HDRS := $(wildcard include/fpesa/*.h common/*.h mapper/*.h)

# The target with a plain main() that runs each file given (make test replays the corpus).
$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c $$(call fuzz_srcs,$$*) $(FUZZ_HDRS)
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) $(call pkg_cflags,$(fuzz_PKGS)) -o $@ $(filter %.c,$^) \
	    $(call pkg_libs,$(fuzz_PKGS)) $(BASE_LIBS)

# The libFuzzer binary (clang only).
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(call fuzz_srcs,$$*) $(FUZZ_HDRS)
	@mkdir -p $(@D)
	@command -v clang >/dev/null || { echo "fuzz: clang is missing (make deps)" >&2; exit 1; }
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    $(call pkg_cflags,$(fuzz_PKGS)) -o $@ $(filter %.c,$^) $(call pkg_libs,$(fuzz_PKGS)) $(BASE_LIBS)

fuzz-replay-bins: $(patsubst %,$(BUILD)/fuzz/replay_%,$(FUZZ_NAMES))
fuzz-bins: $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_NAMES))

BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 $(WARN) $(call pkg_cflags,$(bench_PKGS)) -o $@ $< \
	    -Wl,--as-needed $(call pkg_libs,$(bench_PKGS)) $(BASE_LIBS)

bench-bins: $(BENCH_BINS)

deps:
	@scripts/deps.sh

# make up CONFIG=examples/timers/endpoints.yaml runs another system from its file.
up: deps
	@$(MAKE) --no-print-directory all
	@$(if $(CONFIG),FPESA_CONFIG=$(CONFIG) )scripts/up.sh

# make up-cluster: the scaled-out system on one machine (doc/cluster.rst):
# three RabbitMQ nodes, a PostgreSQL primary and replica, two of each program.
up-cluster: deps
	@$(MAKE) --no-print-directory all
	@$(if $(CONFIG),FPESA_CONFIG=$(CONFIG) )scripts/up-cluster.sh

down:
	@scripts/down.sh

# What make up or make up-cluster runs, and where.
status:
	@FPESA_STACK=up scripts/stack.sh status
	@FPESA_STACK=up scripts/cluster.sh status

# Restarts every program of the running stack in turn (make up's, or the one
# FPESA_STACK names), with no failed request under load.
restart:
	@scripts/stack.sh restart

# SIGHUP to every running program: each reads endpoints.yaml again (nginx-like).
reload:
	@scripts/stack.sh reload

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
	@$(MAKE) --no-print-directory all bench-bins
	@scripts/bench.sh

# make faults CLUSTER=1 runs the cluster's fault test (tests/integration/cluster_faults.py) instead.
faults: deps
	@$(MAKE) --no-print-directory all
	@FPESA_FAULTS_FULL=1 $(if $(CLUSTER),FPESA_FAULTS_CLUSTER=1 )scripts/faults.sh

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-bins
	@scripts/fuzz.sh

# ---- installing and packaging ----------------------------------------------
#
# make install PREFIX=/usr/local DESTDIR=   installs the programs (as fpesa-*),
# the plugins, the plugin ABI header and its pkg-config file, the manual
# pages, example systemd units and the configuration (kept if present).
VERSION := $(shell sed -n 's/^\#define FPESA_VERSION "\(.*\)"/\1/p' common/version.h)
PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
BINDIR := $(PREFIX)/bin
PLUGINDIR := $(PREFIX)/lib/fpesa/plugins
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
INSTALL ?= install

# Manual pages, from doc/man/ by Sphinx's man builder.
man: $(BUILD)/man/fpesa-restmapper.8
$(BUILD)/man/fpesa-restmapper.8: $(wildcard doc/man/*.rst) doc/conf.py
	@mkdir -p $(@D)
	sphinx-build -q -W -b man doc $(BUILD)/man

subst = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
            -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@CONFDIR@|$(SYSCONFDIR)/fpesa|g' \
            -e 's|@VERSION@|$(VERSION)|g'

install: all man
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(PREFIX)/include/fpesa \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/fpesa \
	    $(DESTDIR)$(SYSCONFDIR)/default $(DESTDIR)$(PREFIX)/share/doc/fpesa/examples
	$(INSTALL) -m 755 $(BUILD)/bin/restmapper $(DESTDIR)$(BINDIR)/fpesa-restmapper
	$(INSTALL) -m 755 $(BUILD)/bin/liveupdate $(DESTDIR)$(BINDIR)/fpesa-liveupdate
	$(INSTALL) -m 755 $(BUILD)/bin/handler $(DESTDIR)$(BINDIR)/fpesa-handler
	$(INSTALL) -m 644 $(PLUGINS) $(DESTDIR)$(PLUGINDIR)/
	$(INSTALL) -m 644 include/fpesa/handler.h $(DESTDIR)$(PREFIX)/include/fpesa/handler.h
	$(subst) packaging/fpesa-handler.pc.in >$(DESTDIR)$(PREFIX)/lib/pkgconfig/fpesa-handler.pc
	$(INSTALL) -m 644 $(BUILD)/man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	$(INSTALL) -m 644 $(BUILD)/man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	for u in packaging/systemd/*.service; do \
	    $(subst) $$u >$(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; done
	[ -e $(DESTDIR)$(SYSCONFDIR)/fpesa/endpoints.yaml ] || \
	    $(INSTALL) -m 644 endpoints.yaml $(DESTDIR)$(SYSCONFDIR)/fpesa/endpoints.yaml
	[ -e $(DESTDIR)$(SYSCONFDIR)/default/fpesa ] || \
	    $(INSTALL) -m 644 packaging/default.env $(DESTDIR)$(SYSCONFDIR)/default/fpesa
	cp -r examples doc/examples/wordcount doc/examples/wordcount.yaml nginx/nginx.conf.in \
	    $(DESTDIR)$(PREFIX)/share/doc/fpesa/examples/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/fpesa-restmapper $(DESTDIR)$(BINDIR)/fpesa-liveupdate \
	    $(DESTDIR)$(BINDIR)/fpesa-handler $(DESTDIR)$(PREFIX)/include/fpesa/handler.h \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/fpesa-handler.pc \
	    $(DESTDIR)$(PREFIX)/share/man/man8/fpesa-*.8 $(DESTDIR)$(PREFIX)/share/man/man5/fpesa-*.5 \
	    $(DESTDIR)$(UNITDIR)/fpesa-*.service
	rm -rf $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(PREFIX)/share/doc/fpesa
	-rmdir $(DESTDIR)$(PREFIX)/include/fpesa $(DESTDIR)$(PREFIX)/lib/fpesa 2>/dev/null

# make deb: build/fpesa_<version>_<arch>.deb, installing under /usr with the
# configuration in /etc/fpesa (a conffile). Its dependencies are the shared
# libraries the programs and plugins link, as dpkg-shlibdeps finds them.
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB := $(BUILD)/fpesa_$(VERSION)_$(DEB_ARCH).deb
deb: all man
	@scripts/deb.sh "$(BUILD)" "$(VERSION)" "$(DEB_ARCH)" "$(DEB)"

# What make test runs for the fuzz suite (scripts/test.sh calls it).
fuzz-replay:
	@scripts/fuzz.sh --replay

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
