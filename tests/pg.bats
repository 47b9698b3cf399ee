#!/usr/bin/env bats
# tests/pg: a throwaway PostgreSQL cluster, checked with psql.

load test_helper
load stand_ins

stand_ins_per_file --private pg

setup() {
	common_setup
	load_env
}

@test "psql connects over TCP with the generated password" {
	run psql "$DPONE_TEST_PG_URL" -Atc "select current_user, current_database(), split_part(version(), ' ', 2) >= '15'"
	assert_success
	assert_output "dpone|dpone|t"
}

@test "a wrong password is refused" {
	run psql "${DPONE_TEST_PG_URL/dpone:/dpone:x}" -Atc "select 1"
	assert_failure
	assert_output_contains "password authentication failed"
}

@test "the unix socket works too" {
	. "$BATS_FILE_TMPDIR/env/pg.env"
	run psql -h "$DPONE_TEST_PG_SOCKET_DIR" -p "$DPONE_TEST_PG_PORT" -U dpone -d dpone -Atc "select 2"
	assert_success
	assert_output "2"
}

@test "tables and transactions work" {
	run psql "$DPONE_TEST_PG_URL" -q -v ON_ERROR_STOP=1 -Atc "create schema if not exists s$BATS_TEST_NUMBER; create table s$BATS_TEST_NUMBER.t (k text primary key, v bigint); insert into s$BATS_TEST_NUMBER.t values ('a', 1); select v from s$BATS_TEST_NUMBER.t"
	assert_success
	assert_output "1"
}
