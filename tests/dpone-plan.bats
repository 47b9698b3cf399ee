#!/usr/bin/env bats
# dpone-plan: options, manifest handling and exit codes.

load test_helper

@test "dpone-plan --help prints the usage on stdout and exits 0" {
	run dpone-plan --help
	assert_success
	assert_output_contains "usage: dpone-plan [-hqV]"
}

@test "dpone-plan --version" {
	run dpone-plan --version
	assert_success
	assert_output "dpone-plan 0.1.0"
}

@test "dpone-plan: an unknown option is a usage error" {
	run dpone-plan --bogus m.yaml
	assert_failure 2
	assert_output_contains "dpone-plan: unknown option --bogus"
	assert_output_contains "usage: dpone-plan"
}

@test "dpone-plan: a missing manifest operand is a usage error" {
	run dpone-plan
	assert_failure 2
	assert_output_contains "dpone-plan: missing MANIFEST"
}

@test "dpone-plan: a bad manifest exits 2 with file:line:col" {
	write_manifest
	sed -i 's/^  topic: dwh.orders/  topik: dwh.orders/' m.yaml
	run dpone-plan m.yaml
	assert_failure 2
	assert_output "dpone-plan: m.yaml:10:3: sink.topik: unknown key (did you mean 'topic'?)"
}

@test "dpone-plan --print-manifest prints the resolved manifest" {
	write_manifest
	use_env_connections "Pl4nted-plan-$$"
	run dpone-plan --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.password)" = "***" ]
	refute_output_contains "Pl4nted-plan-$$"
}

@test "dpone-plan: plans are not available in this build" {
	write_manifest
	run dpone-plan m.yaml
	assert_failure 9
	assert_output_contains "use --print-manifest"
}
