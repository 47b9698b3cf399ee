#!/usr/bin/env bats
# dpone-check: options, manifest handling and exit codes.

load test_helper

@test "dpone-check --help prints the usage on stdout and exits 0" {
	run dpone-check --help
	assert_success
	assert_output_contains "usage: dpone-check [-hqV]"
}

@test "dpone-check --version" {
	run dpone-check --version
	assert_success
	assert_output "dpone-check 0.1.0"
}

@test "dpone-check: an unknown option is a usage error" {
	run dpone-check --bogus m.yaml
	assert_failure 2
	assert_output_contains "dpone-check: unknown option --bogus"
	assert_output_contains "usage: dpone-check"
}

@test "dpone-check: a missing manifest operand is a usage error" {
	run dpone-check
	assert_failure 2
	assert_output_contains "dpone-check: missing MANIFEST"
}

@test "dpone-check: a bad manifest exits 2 with file:line:col" {
	write_manifest
	sed -i 's/^  topic: dwh.orders/  topik: dwh.orders/' m.yaml
	run dpone-check m.yaml
	assert_failure 2
	assert_output "dpone-check: m.yaml:10:3: sink.topik: unknown key (did you mean 'topic'?)"
}

@test "dpone-check --print-manifest prints the resolved manifest" {
	write_manifest
	use_env_connections "Pl4nted-check-$$"
	run dpone-check --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.password)" = "***" ]
	refute_output_contains "Pl4nted-check-$$"
}

@test "dpone-check: checks are not available in this build" {
	write_manifest
	printf 'quality:\n  checks:\n    - {type: min_rows, threshold: 1}\n' >> m.yaml
	run dpone-check m.yaml
	assert_failure 9
	assert_output_contains "quality checks are not available in this build yet"
}
