#!/usr/bin/env bats
# The Debian package: built from the tracked files with the build
# dependencies debian/control declares (make deb), checked by lintian,
# installed with dpkg -i, used (--version, man, doctor, the demo job against
# the stand-ins), then purged without a file left behind.

load test_helper

setup_file() {
	# One build for the file's tests: they look at the same package.
	export DEB_DIR="$BATS_FILE_TMPDIR/deb"
	make -C "$BATS_TEST_DIRNAME/.." O="$DEB_DIR" deb > "$BATS_FILE_TMPDIR/build.log" 2>&1 ||
		{ tail -n 30 "$BATS_FILE_TMPDIR/build.log" >&2; return 1; }
}

teardown_file() {
	# Never leave the package installed, whatever failed.
	if dpkg-query -W -f='${Status}' dpone 2> /dev/null | grep -q installed; then
		as_root dpkg --purge dpone > /dev/null
	fi
}

# as_root CMD...: dpkg -i needs root; CI runs as root, a developer with sudo.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

deb() {
	ls "$DEB_DIR"/deb/dpone_*_*.deb
}

@test "deb: lintian (pedantic) reports nothing but the explained overrides" {
	run lintian -I --pedantic "$(deb)"
	assert_success
	[ -z "$(grep -v 'running with root privileges' <<< "$output")" ] || flunk "$output"
}

@test "deb: what it holds and needs: the programs, pages and examples; Depends from the linked libraries, Recommends by soname" {
	run dpkg-deb -c "$(deb)"
	for f in usr/bin/dpone usr/bin/dpone-extract usr/bin/dpone-produce usr/bin/dpone-state usr/bin/dpone-check \
		usr/bin/dpone-plan usr/share/man/man5/dpone-manifest.5.gz usr/share/man/man7/dpone-stream.7.gz \
		usr/share/doc/dpone/examples/cron/crontab usr/share/doc/dpone/examples/prometheus/dpone.rules.yml \
		usr/share/doc/dpone/examples/grafana/dpone.json usr/share/doc/dpone/copyright; do
		assert_output_contains "./$f"
	done
	depends=$(dpkg-deb -f "$(deb)" Depends)
	for lib in libsybdb5 librdkafka1 libjansson4 libyaml-0-2 libzstd1; do
		[[ "$depends" == *"$lib"* ]] || flunk "Depends lacks $lib: $depends"
	done
	# Opened at run time, not linked: Recommends, by the sonames dpone opens.
	[[ "$depends" != *libpq* && "$depends" != *libcurl* ]] || flunk "Depends: $depends"
	[ "$(dpkg-deb -f "$(deb)" Recommends)" = "libpq5, libcurl4 | libcurl3-gnutls" ]
	grep -q '"libpq.so.5"' "$SRCDIR/libcommon/dpone.h"
	grep -q '"libcurl.so.4", "libcurl-gnutls.so.4"' "$SRCDIR/libcommon/http.c"
	[ "$(dpkg-deb -f "$(deb)" Version)" = "$(cat "$SRCDIR/VERSION")-1" ]
}

@test "deb: installed with dpkg -i, it runs the demo job against the stand-ins; purged, it leaves no file" {
	as_root dpkg -i "$(deb)" > /dev/null
	run /usr/bin/dpone --version
	assert_output "dpone $(cat "$SRCDIR/VERSION")"
	run man -w dpone-manifest
	assert_output "/usr/share/man/man5/dpone-manifest.5.gz"
	run /usr/bin/dpone doctor
	assert_success
	assert_output_contains "dpone-extract $(cat "$SRCDIR/VERSION") (/usr/bin/dpone-extract)"
	# The demo job, with the installed programs only.
	run env DPONE_BIN=/usr/bin sh "$SRCDIR/scripts/demo"
	assert_success
	assert_output_contains "7 orders in dwh.orders, each once"
	dpkg -L dpone > files.txt
	as_root dpkg --purge dpone > /dev/null
	run dpkg-query -W -f='${Status}' dpone
	refute_output_contains "installed"
	# Every file, and the package's own directories; shared ones (/usr/bin,
	# /usr/share/lintian/overrides) stay for their other packages.
	while IFS= read -r f; do
		case $f in */dpone*) [ ! -e "$f" ] || flunk "$f is left after purge" ;; esac
		[ -d "$f" ] || [ ! -e "$f" ] || flunk "$f is left after purge"
	done < files.txt
	[ "$(grep -c . files.txt)" -gt 20 ] || flunk "dpkg -L listed $(cat files.txt)"
}
