#!/usr/bin/env bats
# dpone-state: options, manifest handling and exit codes.

load test_helper

@test "dpone-state --help prints the usage on stdout and exits 0" {
	run dpone-state --help
	assert_success
	assert_output_contains "usage: dpone-state [-hqV]"
}

@test "dpone-state --version" {
	run dpone-state --version
	assert_success
	assert_output "dpone-state 0.1.0"
}

@test "dpone-state: an unknown option is a usage error" {
	run dpone-state --bogus m.yaml
	assert_failure 2
	assert_output_contains "dpone-state: unknown option --bogus"
	assert_output_contains "usage: dpone-state"
}

@test "dpone-state: a missing manifest operand is a usage error" {
	run dpone-state
	assert_failure 2
	assert_output_contains "dpone-state: missing MANIFEST"
}

@test "dpone-state: a bad manifest exits 2 with file:line:col" {
	write_manifest
	sed -i 's/^  topic: dwh.orders/  topik: dwh.orders/' m.yaml
	run dpone-state m.yaml get
	assert_failure 2
	assert_output "dpone-state: m.yaml:10:3: sink.topik: unknown key (did you mean 'topic'?)"
}

@test "dpone-state --print-manifest prints the resolved manifest" {
	write_manifest
	use_env_connections "Pl4nted-state-$$"
	run dpone-state --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.password)" = "***" ]
	refute_output_contains "Pl4nted-state-$$"
}

@test "dpone-state: the command is required and checked" {
	write_manifest
	run dpone-state m.yaml
	assert_failure 2
	assert_output_contains "missing COMMAND"
	run dpone-state m.yaml comit
	assert_failure 2
	assert_output "dpone-state: unknown command 'comit' (did you mean 'commit'?)"
	run dpone-state m.yaml get extra
	assert_failure 2
	assert_output_contains "too many operands"
}

@test "dpone-state: state backends are not available in this build" {
	write_manifest
	for cmd in get commit history reset lock unlock; do
		run dpone-state m.yaml "$cmd"
		assert_failure 9
		assert_output "dpone-state: state $cmd is not available in this build yet; no state was read or changed"
	done
}
