#!/usr/bin/env bats
# Manual pages: they render cleanly, their EXIT STATUS is the one table in
# libcommon/exit_codes.def, and each command's --help matches its SYNOPSIS.

load test_helper

# synopsis PAGE: the SYNOPSIS section rendered on one line each.
synopsis() {
	LC_ALL=C MANWIDTH=400 man -l "$1" 2>/dev/null | sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed 's/^ *//'
}

@test "every page renders with man and groff -ww reports nothing" {
	pages=$(ls "$SRCDIR"/man/*.[0-9])
	[ -n "$pages" ]
	for page in $pages; do
		run groff -man -ww -z "$page"
		assert_success
		[ -z "$output" ] || flunk "groff warnings in $page"
		run man -l "$page"
		assert_success
		assert_output_contains "NAME"
	done
}

@test "every page has an EXIT STATUS generated from exit_codes.def" {
	for page in "$SRCDIR"/man/dpone*.1; do
		cp "$page" copy.1
		sh "$SRCDIR/scripts/exit-codes" sync copy.1
		diff -u "$page" copy.1 || flunk "$page: EXIT STATUS is stale; run make man-sync"
		run man -l "$page"
		assert_output_contains "130 (interrupted)"
		assert_output_contains "9 (unavailable)"
	done
}

@test "the exit-status generator fails on a stale page" {
	cp "$SRCDIR/man/dpone-extract.1" stale.1
	sed -i 's/^Success: the command did all it was asked to do\.$/Success./' stale.1
	cp stale.1 synced.1
	sh "$SRCDIR/scripts/exit-codes" sync synced.1
	! diff -q stale.1 synced.1 >/dev/null
}

@test "each command's --help usage line is its SYNOPSIS" {
	for cmd in dpone-extract dpone-produce dpone-state dpone-check dpone-plan; do
		usage=$("$cmd" --help | sed -n 's/^usage: //p')
		syn=$(synopsis "$SRCDIR/man/$cmd.1" | grep "^$cmd ")
		[ "$usage" = "$syn" ] || flunk "$cmd: --help says '$usage', SYNOPSIS says '$syn'"
	done
}

@test "the wrapper's usage matches its SYNOPSIS" {
	usage=$(dpone --help | sed -n 's/^usage: //p')
	syn=$(synopsis "$SRCDIR/man/dpone.1" | head -n 2 | tail -n 1)
	[ "$usage" = "$syn" ] || flunk "--help says '$usage', SYNOPSIS says '$syn'"
}

@test "dpone help finds section 5 and 7 pages too" {
	run env MANPAGER=cat dpone help manifest
	assert_success
	assert_output_contains "connection_type: vault"
	# Justified text has runs of spaces wherever the line breaks fall.
	run sh -c 'MANPAGER=cat dpone help stream | tr -s " "'
	assert_success
	assert_output_contains "A stream without its end is truncated"
}

@test "the version comes from VERSION: every command's --version, every page's footer, debian/changelog" {
	version=$(cat "$SRCDIR/VERSION")
	[ -n "$version" ]
	for cmd in dpone dpone-extract dpone-produce dpone-state dpone-check dpone-plan; do
		run "$cmd" --version
		assert_output "$cmd $version"
	done
	for page in "$SRCDIR"/man/*.[0-9]; do
		grep -q "^\.TH [^\"]*\"dpone $version\"" "$page" || flunk "$page: footer is not dpone $version: $(grep '^\.TH' "$page")"
	done
	# Debian's version is VERSION and a Debian revision.
	changelog=$(sed -n '1s/^dpone (\([^)]*\)).*/\1/p' "$SRCDIR/debian/changelog")
	[ "${changelog%-*}" = "$version" ] || flunk "debian/changelog says $changelog, VERSION $version"
}
