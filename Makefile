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

# Build directories: objects in O, programs in BIN.
O   ?= build
BIN ?= bin

CFLAGS   ?= -O2 -g
WERROR   ?= -Werror
SANFLAGS ?=
DP_CFLAGS   = -std=c11 -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes \
              -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral $(SANFLAGS)
DP_CPPFLAGS = -D_GNU_SOURCE -Ilibcommon $(shell $(PKG_CONFIG) --cflags $(COMMON_PKGS) $(STAGE_PKGS))

COMMON_PKGS = yaml-0.1 jansson libzstd libcurl
STAGE_PKGS  = rdkafka libpq
COMMON_LIBS = $(shell $(PKG_CONFIG) --libs $(COMMON_PKGS))
# FreeTDS ships no pkg-config file.
FREETDS_LIBS = -lsybdb

PROGRAMS = dpone-extract dpone-produce dpone-state dpone-check dpone-plan
LIBCOMMON_SRC = $(wildcard libcommon/*.c)
LIBCOMMON_OBJ = $(LIBCOMMON_SRC:%.c=$(O)/%.o)
LIBCOMMON = $(O)/libcommon.a
TESTTOOLS = stream-relay json-agree
HEADERS = libcommon/dpone.h libcommon/exit_codes.def libcommon/manifest_schema.h $(wildcard cmd/*/*.h)

MANPAGES = $(wildcard man/*.[0-9])

extract_LIBS = $(FREETDS_LIBS)
produce_LIBS = $(shell $(PKG_CONFIG) --libs rdkafka)
state_LIBS   = $(shell $(PKG_CONFIG) --libs libpq)

.PHONY: all testtools check check-asan deps demo bench install uninstall clean man-sync

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
$(BIN)/dpone: cmd/dpone/dpone.in libcommon/exit_codes.def scripts/exit-codes
	@mkdir -p $(BIN)
	sh scripts/exit-codes sh < libcommon/exit_codes.def > $@.table
	sed -e '/@EXIT_CODES@/{r $@.table' -e 'd;}' -e 's/@VERSION@/$(shell sed -n 's/^#define DPONE_VERSION "\(.*\)"/\1/p' libcommon/dpone.h)/' cmd/dpone/dpone.in > $@.tmp
	rm -f $@.table
	chmod 755 $@.tmp
	mv $@.tmp $@

testtools: $(TESTTOOLS:%=$(O)/test-bin/%) $(O)/test-bin/kafkad $(O)/test-bin/mssqld

$(O)/test-bin/%: $(O)/tests/tools/%.o $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(DP_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(COMMON_LIBS) $(LDLIBS)

# The SQL Server stand-in: TDS 7.4 over SQLite.
MSSQLD_SRC = $(wildcard tests/mssqld/*.c)
$(O)/test-bin/mssqld: $(MSSQLD_SRC:%.c=$(O)/%.o) $(O)/tests/common/control.o
	@mkdir -p $(dir $@)
	$(CC) $(DP_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lsqlite3 -lpthread $(LDLIBS)

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

check-asan: deps
	$(MAKE) O=build-asan BIN=build-asan/bin \
		SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		all testtools
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1 \
	DPONE_SANITIZED=1 DPONE_MANDIR=$(abspath man) DPONE_BIN=$(abspath build-asan/bin) DPONE_TEST_BIN=$(abspath build-asan/test-bin) \
		$(BATS) tests

demo: deps
	$(MAKE) all testtools
	sh scripts/demo

bench: deps
	$(MAKE) all testtools
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/stream
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/mssqld
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/extract
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/produce
	DPONE_BIN=$(abspath $(BIN)) DPONE_TEST_BIN=$(abspath $(O)/test-bin) sh bench/e2e

# Rewrite every man page's EXIT STATUS from exit_codes.def.
man-sync:
	sh scripts/exit-codes sync $(MANPAGES)

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
	rm -rf $(O) $(BIN) build-asan
