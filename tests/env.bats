#!/usr/bin/env bats
# tests/env: up starts every stand-in and writes DIR/env; down leaves no
# process behind, also when the servers were already gone.

load test_helper

# Is pid alive? A zombie (exited, not yet reaped by whoever adopted it)
# is not: some containers' PID 1 never reaps adopted children.
alive() {
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	case $state in Z*) return 1 ;; esac
	return 0
}

# The processes a DIR's stand-ins run as.
stand_in_pids() {
	{
		cat "$1"/*.pid 2>/dev/null
		[ ! -f "$1/pg.dir" ] || head -n 1 "$(cat "$1/pg.dir")/data/postmaster.pid" 2>/dev/null
	} | sort -u
}

@test "up starts all three and writes a usable env; down stops them all" {
	run "$BATS_TEST_DIRNAME/env" up "$TEST_TMP/e"
	assert_success
	. "$TEST_TMP/e/env"
	pids=$(stand_in_pids "$TEST_TMP/e")
	[ "$(echo "$pids" | wc -l)" -eq 3 ] || flunk "pids: $pids"
	run bsqldb -q -t "|" -S mssql -U "$DPONE_TEST_MSSQL_USER" -P "$DPONE_TEST_MSSQL_PASSWORD" <<< "select 41 + 1"
	assert_output "42"
	run kcat -L -b "$DPONE_TEST_KAFKA_BOOTSTRAP"
	assert_output_contains "3 brokers"
	run psql "$DPONE_TEST_PG_URL" -Atc "select 1"
	assert_output "1"
	[ "$(stat -c %a "$TEST_TMP/e/env")" = 600 ] || flunk "env is readable by others"
	run "$BATS_TEST_DIRNAME/env" down "$TEST_TMP/e"
	assert_success
	for pid in $pids; do
		! alive "$pid" || flunk "process $pid is still running"
	done
}

@test "down after a crash of every server still cleans up" {
	"$BATS_TEST_DIRNAME/env" up "$TEST_TMP/e" mssql kafka
	for pid in $(stand_in_pids "$TEST_TMP/e"); do kill -KILL "$pid"; done
	run "$BATS_TEST_DIRNAME/env" down "$TEST_TMP/e"
	assert_success
	[ -z "$(ls "$TEST_TMP"/e/*.pid 2>/dev/null)" ] || flunk "pid files left"
}

@test "real servers named by the environment are used instead of stand-ins" {
	DPONE_TEST_MSSQL_URL="mssql://u:p%40ss@db.example:14333/sales" DPONE_TEST_KAFKA_BOOTSTRAP="k1:9092" \
		DPONE_TEST_PG_URL="postgres://x:y@pg.example/z" run "$BATS_TEST_DIRNAME/env" up "$TEST_TMP/r"
	assert_success
	. "$TEST_TMP/r/env"
	[ "$DPONE_TEST_MSSQL_HOST:$DPONE_TEST_MSSQL_PORT/$DPONE_TEST_MSSQL_DATABASE" = "db.example:14333/sales" ] || flunk "mssql: $DPONE_TEST_MSSQL_HOST"
	[ "$DPONE_TEST_KAFKA_BOOTSTRAP" = "k1:9092" ] || flunk "kafka"
	[ "$DPONE_TEST_PG_URL" = "postgres://x:y@pg.example/z" ] || flunk "pg"
	[ -z "$MSSQLD_CONTROL$KAFKAD_CONTROL" ] || flunk "fault controls of stand-ins that do not run"
	[ -z "$(ls "$TEST_TMP"/r/*.pid 2>/dev/null)" ] || flunk "a stand-in was started"
	"$BATS_TEST_DIRNAME/env" down "$TEST_TMP/r"
}
