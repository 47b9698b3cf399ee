#!/usr/bin/env bats
# dpone-produce: options, manifest handling and exit codes.

load test_helper

@test "dpone-produce --help prints the usage on stdout and exits 0" {
	run dpone-produce --help
	assert_success
	assert_output_contains "usage: dpone-produce [-hqV]"
}

@test "dpone-produce --version" {
	run dpone-produce --version
	assert_success
	assert_output "dpone-produce 0.1.0"
}

@test "dpone-produce: an unknown option is a usage error" {
	run dpone-produce --bogus m.yaml
	assert_failure 2
	assert_output_contains "dpone-produce: unknown option --bogus"
	assert_output_contains "usage: dpone-produce"
}

@test "dpone-produce: a missing manifest operand is a usage error" {
	run dpone-produce
	assert_failure 2
	assert_output_contains "dpone-produce: missing MANIFEST"
}

@test "dpone-produce: a bad manifest exits 2 with file:line:col" {
	write_manifest
	sed -i 's/^  topic: dwh.orders/  topik: dwh.orders/' m.yaml
	run dpone-produce m.yaml
	assert_failure 2
	assert_output "dpone-produce: m.yaml:10:3: sink.topik: unknown key (did you mean 'topic'?)"
}

@test "dpone-produce --print-manifest prints the resolved manifest" {
	write_manifest
	use_env_connections "Pl4nted-produce-$$"
	run dpone-produce --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.password)" = "***" ]
	refute_output_contains "Pl4nted-produce-$$"
}

@test "dpone-produce: publishing is not available in this build; stdin is not read" {
	write_manifest
	use_env_connections
	mkfifo never-written
	# If it read stdin it would block on the FIFO; timeout turns that into 124.
	run timeout 10 sh -c 'exec 3<>never-written; dpone-produce m.yaml <never-written'
	assert_failure 9
	assert_output_contains "publishing to Kafka is not available in this build yet"
}

@test "dpone-produce: the sink connection must be a kafka one" {
	write_manifest
	use_env_connections
	export DPONE_CONN_KAFKA_CLUSTER="mssql://u:p@h/d"
	run dpone-produce m.yaml < /dev/null
	assert_failure 2
	assert_output_contains "is a mssql connection, but a kafka one is needed here"
}
