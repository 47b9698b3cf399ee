#!/usr/bin/env bats
# dpone-extract: options, manifest handling and exit codes.

load test_helper

@test "dpone-extract --help prints the usage on stdout and exits 0" {
	run dpone-extract --help
	assert_success
	assert_output_contains "usage: dpone-extract [-hqV]"
}

@test "dpone-extract --version" {
	run dpone-extract --version
	assert_success
	assert_output "dpone-extract 0.1.0"
}

@test "dpone-extract: an unknown option is a usage error" {
	run dpone-extract --bogus m.yaml
	assert_failure 2
	assert_output_contains "dpone-extract: unknown option --bogus"
	assert_output_contains "usage: dpone-extract"
}

@test "dpone-extract: a missing manifest operand is a usage error" {
	run dpone-extract
	assert_failure 2
	assert_output_contains "dpone-extract: missing MANIFEST"
}

@test "dpone-extract: a bad manifest exits 2 with file:line:col" {
	write_manifest
	sed -i 's/^  topic: dwh.orders/  topik: dwh.orders/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output "dpone-extract: m.yaml:10:3: sink.topik: unknown key (did you mean 'topic'?)"
}

@test "dpone-extract --print-manifest prints the resolved manifest" {
	write_manifest
	use_env_connections "Pl4nted-extract-$$"
	run dpone-extract --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.password)" = "***" ]
	refute_output_contains "Pl4nted-extract-$$"
}

@test "dpone-extract: reading is not available in this build; nothing is written" {
	write_manifest
	use_env_connections
	run sh -c 'dpone-extract m.yaml 2>err; echo "status=$?"; cat err'
	assert_output "status=9
dpone-extract: reading from SQL Server is not available in this build yet; no stream was written"
}

@test "dpone-extract: the source connection is resolved before anything else" {
	write_manifest
	export DPONE_CONN_KAFKA_CLUSTER=kafka://k:1
	run dpone-extract m.yaml
	assert_failure 10
	assert_output_contains "DPONE_CONN_MSSQL_DWH is not set"
}
