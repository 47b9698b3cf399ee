#!/usr/bin/env bats
# The Makefile: user flags are added to ours, install and uninstall honour
# PREFIX and DESTDIR, and the installed wrapper finds its stages.

load test_helper

# The build directories make check used, as make arguments.
build_vars=("O=$(dirname "$DPONE_TEST_BIN")" "BIN=$DPONE_BIN")

@test "user CFLAGS and LDFLAGS are added to the project's flags" {
	run make -s -n -B -C "$SRCDIR" "${build_vars[@]}" CFLAGS=-DUSER_CFLAG LDFLAGS=-Wl,--user-ldflag "$DPONE_BIN/dpone-plan"
	assert_success
	assert_output_contains "-Wall -Wextra"
	assert_output_contains "-DUSER_CFLAG"
	assert_output_contains "-Wl,--user-ldflag"
}

@test "warnings are errors by default" {
	run make -s -n -B -C "$SRCDIR" "${build_vars[@]}" "$DPONE_BIN/dpone-plan"
	assert_output_contains "-Werror"
}

@test "install and uninstall honour PREFIX and DESTDIR" {
	run make -s -C "$SRCDIR" "${build_vars[@]}" DESTDIR="$TEST_TMP/root" PREFIX=/opt/dp install
	assert_success
	for f in bin/dpone bin/dpone-extract bin/dpone-produce bin/dpone-state bin/dpone-check bin/dpone-plan \
		share/man/man1/dpone.1 share/man/man1/dpone-extract.1 share/man/man5/dpone-manifest.5 \
		share/man/man7/dpone-stream.7; do
		[ -f "root/opt/dp/$f" ] || flunk "not installed: $f"
	done
	write_manifest
	use_env_connections
	run env PATH=/usr/bin:/bin root/opt/dp/bin/dpone plan --print-manifest m.yaml
	assert_success
	run env -u DPONE_MANDIR MANPAGER=cat root/opt/dp/bin/dpone help produce
	assert_success
	assert_output_contains "dpone-produce - publish a dpone stream"
	run make -s -C "$SRCDIR" "${build_vars[@]}" DESTDIR="$TEST_TMP/root" PREFIX=/opt/dp uninstall
	assert_success
	[ -z "$(find root -type f)" ] || flunk "left behind: $(find root -type f)"
}

@test "scripts/deps --check knows every package is there" {
	run sh "$SRCDIR/scripts/deps" --check
	assert_success
	assert_output "deps: everything is installed"
}

@test "no program links libcurl or libpq: they are opened when a Vault secret or a postgres state needs them" {
	for prog in dpone-extract dpone-produce dpone-state dpone-check dpone-plan; do
		run ldd "$DPONE_BIN/$prog"
		assert_success
		case $output in
		*libcurl* | *libpq*) flunk "$prog links: $output" ;;
		esac
	done
	# ... and they are there when asked for: the doctor reports libcurl's version and libpq.
	run dpone-plan --doctor --format json "$SRCDIR/examples/mssql_to_kafka.yaml"
	echo "$output" | grep -q '"detail": "jansson .*, libcurl [0-9][0-9.]*, libpq libpq.so.5"' || flunk "no libcurl version or libpq: $output"
}

@test "make lint's style check flags a misformatted file and passes a formatted one" {
	printf 'static int\nf(int a)\n{\n\treturn a + 1;\n}\n' > good.c
	printf 'static int f(int a) { return a+1; }\n' > bad.c
	run clang-format --style="file:$SRCDIR/.clang-format" --dry-run -Werror good.c
	assert_success
	run clang-format --style="file:$SRCDIR/.clang-format" --dry-run -Werror bad.c
	assert_failure
	assert_output_contains "code should be clang-formatted"
}

@test "make lint's shell check flags what ShellCheck warns about" {
	printf '#!/bin/sh\ncd /nowhere\necho done\n' > bad.sh
	run shellcheck -S warning bad.sh
	assert_failure
	assert_output_contains "SC2164"
}
