# dpone: SQL Server -> Kafka, the Unix way.
# Conventions follow zstd's programs/Makefile: PREFIX/DESTDIR, install and
# uninstall, and the user's CFLAGS/LDFLAGS are added to our flags, never
# replaced by them (ours come first, yours last, so yours win).

PREFIX      ?= /usr/local
EXEC_PREFIX ?= $(PREFIX)
BINDIR      ?= $(EXEC_PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
INSTALL     ?= install
PKG_CONFIG  ?= pkg-config
BATS        ?= bats

# The version, from one place: VERSION (dpone --version, the man pages'
# footers and debian/changelog agree with it; make man-sync, tests/man.bats).
VERSION := $(shell cat VERSION)

# Build directories: objects in O, programs in BIN.
O   ?= build
BIN ?= bin

CFLAGS   ?= -O2 -g
WERROR   ?= -Werror
SANFLAGS ?=
DP_CFLAGS   = -std=c11 -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes \
              -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral $(SANFLAGS)
DP_CPPFLAGS = -D_GNU_SOURCE -DDPONE_VERSION='"$(VERSION)"' -Ilibcommon $(shell $(PKG_CONFIG) --cflags $(COMMON_PKGS) $(STAGE_PKGS))

COMMON_PKGS = yaml-0.1 jansson libzstd libcurl
STAGE_PKGS  = rdkafka libpq
# libcurl (and libpq) are opened when first needed, not linked: see
# dp_library_open in libcommon/util.c.
COMMON_LIBS = $(shell $(PKG_CONFIG) --libs yaml-0.1 jansson libzstd)
# FreeTDS ships no pkg-config file.
FREETDS_LIBS = -lsybdb

PROGRAMS = dpone-extract dpone-produce dpone-state dpone-check dpone-plan
LIBCOMMON_SRC = $(wildcard libcommon/*.c)
LIBCOMMON_OBJ = $(LIBCOMMON_SRC:%.c=$(O)/%.o)
LIBCOMMON = $(O)/libcommon.a
TESTTOOLS = stream-relay json-agree
FUZZERS = stream manifest encode state
HEADERS = VERSION libcommon/dpone.h libcommon/exit_codes.def libcommon/manifest_schema.h $(wildcard cmd/*/*.h) tests/fuzz/fuzz.h

MANPAGES = $(wildcard man/*.[0-9])

extract_LIBS = $(FREETDS_LIBS) -lm -lpthread
produce_LIBS = $(shell $(PKG_CONFIG) --libs rdkafka)
state_LIBS   =
plan_LIBS    = -lm

.PHONY: all testtools check check-asan check-valgrind lint format fuzz chaos deps demo bench install uninstall clean \
        man-sync deb

all: $(PROGRAMS:%=$(BIN)/%) $(BIN)/dpone

$(O)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(DP_CPPFLAGS) $(CPPFLAGS) $(DP_CFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(LIBCOMMON_OBJ)
	$(AR) rcs $@ $^

# Each program is every .c file in its cmd/ directory, linked with libcommon.
define program_rule
$(BIN)/$(1): $$(patsubst %.c,$(O)/%.o,$$(wildcard cmd/$(1)/*.c)) $(LIBCOMMON)
	@mkdir -p $(BIN)
	$$(CC) $$(DP_CFLAGS) $$(CFLAGS) $$(LDFLAGS) -o $$@ $$^ $$(COMMON_LIBS) $$($(patsubst dpone-%,%,$(1))_LIBS) $$(LDLIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rule,$(p))))

# The wrapper is generated so that its exit-code table is exit_codes.def.
$(BIN)/dpone: cmd/dpone/dpone.in libcommon/exit_codes.def scripts/exit-codes VERSION
	@mkdir -p $(BIN)
	sh scripts/exit-codes sh < libcommon/exit_codes.def > $@.table
	sed -e '/@EXIT_CODES@/{r $@.table' -e 'd;}' -e 's/@VERSION@/$(VERSION)/' cmd/dpone/dpone.in > $@.tmp
	rm -f $@.table
	chmod 755 $@.tmp
	mv $@.tmp $@

testtools: $(TESTTOOLS:%=$(O)/test-bin/%) $(O)/test-bin/kafkad $(O)/test-bin/mssqld $(FUZZERS:%=$(O)/test-bin/fuzz-%)

$(O)/test-bin/%: $(O)/tests/tools/%.o $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(DP_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(COMMON_LIBS) $(LDLIBS)

# Fuzz harnesses (tests/fuzz/NAME.c). Each links with the code it tests;
# FUZZ_DRIVER is driver.c (replays files: make check) or nothing when
# libFuzzer provides main (make fuzz).
fuzz_stream_OBJ   =
fuzz_manifest_OBJ =
fuzz_encode_OBJ   = $(O)/cmd/dpone-extract/encode.o
fuzz_state_OBJ    = $(O)/cmd/dpone-state/store_file.o $(O)/cmd/dpone-state/record.o $(O)/cmd/dpone-state/keys.o
FUZZ_DRIVER  = $(O)/tests/fuzz/driver.o
FUZZ_LDFLAGS =
define fuzzer_rule
$(O)/test-bin/fuzz-$(1): $(O)/tests/fuzz/$(1).o $(O)/tests/fuzz/common.o $$(fuzz_$(1)_OBJ) $$(FUZZ_DRIVER) $(LIBCOMMON)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(DP_CFLAGS) $$(CFLAGS) $$(LDFLAGS) $$(FUZZ_LDFLAGS) -o $$@ $$^ $$(COMMON_LIBS) $$(LDLIBS)
endef
$(foreach f,$(FUZZERS),$(eval $(call fuzzer_rule,$(f))))

# The SQL Server stand-in: TDS 7.4 over SQLite.
MSSQLD_SRC = $(wildcard tests/mssqld/*.c)
$(O)/test-bin/mssqld: $(MSSQLD_SRC:%.c=$(O)/%.o) $(O)/tests/common/control.o
	@mkdir -p $(dir $@)
	$(CC) $(DP_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lsqlite3 -lssl -lcrypto -lpthread $(LDLIBS)

$(O)/tests/mssqld/%.o: tests/mssqld/%.c tests/mssqld/mssqld.h tests/common/control.h
	@mkdir -p $(dir $@)
	$(CC) $(DP_CPPFLAGS) -Itests/common $(CPPFLAGS) $(DP_CFLAGS) -Wno-missing-prototypes $(CFLAGS) -c -o $@ $<

# What the stand-ins share: the control port.
$(O)/tests/common/%.o $(O)/tests/kafkad/%.o: CPPFLAGS += -Itests/common
$(O)/tests/kafkad/kafkad.o $(O)/tests/common/control.o: tests/common/control.h

# The Kafka stand-in: librdkafka's mock cluster behind a control port.
$(O)/test-bin/kafkad: $(O)/tests/kafkad/kafkad.o $(O)/tests/common/control.o
	@mkdir -p $(dir $@)
	$(CC) $(DP_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(shell $(PKG_CONFIG) --libs rdkafka) $(LDLIBS)

deps:
	@sh scripts/deps --ensure

check: deps
	$(MAKE) all testtools
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) $(BATS) tests
	sh scripts/lint $(BIN)/dpone

# clang-format, cppcheck, clang-tidy and shellcheck (scripts/lint); make
# format rewrites the C sources in the style .clang-format describes.
lint: deps
	$(MAKE) $(BIN)/dpone
	sh scripts/lint $(BIN)/dpone

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-asan: deps
	$(MAKE) O=build-asan BIN=build-asan/bin \
		SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		all testtools
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1 \
	DPONE_SANITIZED=1 DPONE_MANDIR=$(abspath man) DPONE_BIN=$(abspath build-asan/bin) DPONE_TEST_BIN=$(abspath build-asan/test-bin) \
		$(BATS) tests

# The suites with every dpone program under valgrind memcheck (the chaos
# runs are left out: they are about timing, and valgrind is slow).
check-valgrind:
	@sh scripts/deps --ensure valgrind
	$(MAKE) all testtools
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh scripts/valgrind-check \
		$(filter-out tests/chaos.bats,$(wildcard tests/*.bats))

demo: deps
	$(MAKE) all testtools
	sh scripts/demo

bench: deps
	$(MAKE) all testtools
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/stream
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/mssqld
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/extract
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/produce
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/headers
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/e2e
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/reconcile
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/parallel

# libFuzzer (clang) with ASan and UBSan, each harness for FUZZ_SECONDS on a
# copy of its seed corpus; a crash is written to build-fuzz/crashes/NAME/
# and stops the run (keep it under tests/fuzz/regress/NAME/ once fixed).
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
fuzz:
	@sh scripts/deps --ensure clang libclang-rt-14-dev
	$(MAKE) O=build-fuzz BIN=build-fuzz/bin CC=$(FUZZ_CC) FUZZ_DRIVER= FUZZ_LDFLAGS=-fsanitize=fuzzer \
		SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
		$(FUZZERS:%=build-fuzz/test-bin/fuzz-%)
	@for f in $(FUZZERS); do \
		mkdir -p build-fuzz/corpus/$$f build-fuzz/crashes/$$f; \
		cp -n tests/fuzz/corpus/$$f/* build-fuzz/corpus/$$f/ 2>/dev/null; \
		echo "fuzz-$$f: $(FUZZ_SECONDS) s"; \
		build-fuzz/test-bin/fuzz-$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
			-max_len=65536 -artifact_prefix=build-fuzz/crashes/$$f/ -print_final_stats=1 \
			-dict=tests/fuzz/$$f.dict build-fuzz/corpus/$$f 2>build-fuzz/fuzz-$$f.log || \
			{ tail -40 build-fuzz/fuzz-$$f.log; exit 1; }; \
		grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' build-fuzz/fuzz-$$f.log; \
	done

# Chaos: CHAOS_FAULTS random faults into batch runs, for each delivery mode
# (tests/chaos/run; the short form runs in make check).
CHAOS_FAULTS ?= 500
chaos: deps
	$(MAKE) all testtools
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) tests/chaos/run -n $(CHAOS_FAULTS) -d at_least_once
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) tests/chaos/run -n $(CHAOS_FAULTS) -d exactly_once

# The Debian package (debian/), built from a copy of the tracked files (a
# clean checkout, with this tree's edits) with dpkg-buildpackage; the .deb
# lands in $(O)/deb/.
deb:
	rm -rf $(O)/deb
	mkdir -p $(O)/deb/src
	git ls-files -z | xargs -0 tar -cf - | tar -xf - -C $(O)/deb/src
	dpkg-checkbuilddeps $(O)/deb/src/debian/control
	# Not this make's variables (O=...): the package builds as a checkout would.
	cd $(O)/deb/src && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u O -u BIN \
		DEB_BUILD_OPTIONS="parallel=$$(nproc) $${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b
	ls $(O)/deb/*.deb

# Rewrite every man page's EXIT STATUS from exit_codes.def, and its footer's
# version from VERSION.
man-sync:
	sh scripts/exit-codes sync $(MANPAGES)
	sed -i 's/^\(\.TH [^"]*\)"dpone [^"]*"/\1"dpone $(VERSION)"/' $(MANPAGES)

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7
	$(INSTALL) -m 755 $(PROGRAMS:%=$(BIN)/%) $(BIN)/dpone $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 $(filter %.1,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 $(filter %.5,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 644 $(filter %.7,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man7/

uninstall:
	rm -f $(PROGRAMS:%=$(DESTDIR)$(BINDIR)/%) $(DESTDIR)$(BINDIR)/dpone
	rm -f $(foreach p,$(MANPAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(p)))/$(notdir $(p)))

clean:
	rm -rf $(O) $(BIN) build-asan build-fuzz
