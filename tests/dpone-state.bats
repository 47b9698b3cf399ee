#!/usr/bin/env bats
# dpone-state: options, manifest handling, and the state itself in both
# backends: a JSON file and PostgreSQL (a throwaway cluster, or the server
# DPONE_TEST_PG_URL names).

load test_helper
load stand_ins

stand_ins_per_file pg

setup() {
	common_setup
	load_env
	JOB="state_job_$BATS_TEST_NUMBER"
}

# state_manifest file|postgres: ./m.yaml for an incremental job $JOB.
state_manifest() {
	write_manifest
	sed -i "s/^name: .*/name: $JOB/; s/mode: full_refresh/mode: incremental_append/" m.yaml
	sed -i 's/^    name: orders$/    name: orders\n  options: {incremental_column: updated_at}/' m.yaml
	if [ "$1" = postgres ]; then
		printf 'state: {type: postgres, connection_id: postgres_state}\n' >> m.yaml
	fi
	use_env_connections
	export DPONE_CONN_POSTGRES_STATE="$DPONE_TEST_PG_URL"
}

# summary RUN_ID FROM HIGH [DELIVERED]: the summary dpone-produce writes
# for a run that started from FROM (JSON or "") and read up to HIGH
# ($ROWS rows, 2 unless set).
summary() {
	local from=${2:+,\"from\":$2}
	printf '["header",{"protocol":1,"run_id":"%s","columns":[{"name":"id","sql_type":"int"},{"name":"updated_at","sql_type":"%s"}],"key":["id"],"boundary":{"kind":"incremental","column":"updated_at"%s}}]\n' \
		"$1" "${SQL_TYPE:-datetime2(7)}" "$from"
	printf '["delivery",{"messages":%s,"delivered":%s,"failed":0}]\n' "${ROWS:-2}" "${4:-2}"
	printf '["end",{"rows":%s,"watermark":{"column":"updated_at","low":%s,"high":%s}}]\n' "${ROWS:-2}" "$3" "$3"
}

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

@test "dpone-state: get on a new job, then commit moves the watermark exactly (file)" {
	state_manifest file
	run dpone-state m.yaml get
	assert_success
	assert_output "{\"job\":\"$JOB\",\"record\":null,\"lease\":null}"
	run dpone-state m.yaml get --watermark
	assert_output ""
	summary r1 "" '"2026-11-26T08:00:00.1234567"' | dpone-state -q m.yaml commit > out.json
	jq -e '.run_id == "r1" and .watermark.value == "2026-11-26T08:00:00.1234567"
		and .watermark.sql_type == "datetime2(7)" and .rows == 2' out.json > /dev/null || flunk "$(cat out.json)"
	run dpone-state m.yaml get --watermark
	assert_output '"2026-11-26T08:00:00.1234567"'
	# The file is replaced whole (temp file, fsync, rename): no temp left.
	[ -f ".dpone/state/$JOB.json" ] && [ ! -e ".dpone/state/$JOB.json.tmp" ]
}

# state_contract BACKEND: the compare-and-set rules, the same for each backend.
state_contract() {
	state_manifest "$1"
	summary r1 "" 100 | dpone-state -q m.yaml commit > /dev/null
	# A run planned from an older watermark (or none) may not commit.
	run dpone-state m.yaml commit < <(summary r2 "" 200)
	assert_failure 7
	assert_output_contains "state moved since run r2 planned: it started from watermark none, state is now 100 (run r1); nothing was overwritten"
	# The same run twice is refused too.
	run dpone-state m.yaml commit < <(summary r1 100 200)
	assert_failure 7
	assert_output_contains "run r1 is already committed"
	run dpone-state m.yaml get --watermark
	assert_output "100"
	# A partial delivery or a stream without its end never moves state.
	run dpone-state m.yaml commit < <(summary r3 100 300 1)
	assert_failure 5
	assert_output_contains "reports 1 of 2 messages delivered"
	run dpone-state m.yaml commit < <(summary r3 100 300 | sed '$d')
	assert_failure 3
	run dpone-state m.yaml commit < <(summary r3 100 300 | sed '2d')
	assert_failure 3
	assert_output_contains "no delivery message"
	run dpone-state m.yaml commit < <(summary r3 100 300 | sed '2a ["checks",{"passed":false}]')
	assert_failure 8
	run dpone-state m.yaml get --watermark
	assert_output "100"
	# A lookback that re-read only older rows does not move it backwards.
	dpone-state -q m.yaml commit < <(summary r4 100 90) > /dev/null
	run dpone-state m.yaml get --watermark
	assert_output "100"
	dpone-state -q m.yaml commit < <(summary r5 100 300) > /dev/null
	run dpone-state m.yaml history
	assert_success
	[ "$(jq -r '[.run_id, .watermark_before, .watermark_after] | @tsv' <<< "$output")" = "r1		100
r4	100	100
r5	100	300" ] || flunk "$output"
}

@test "dpone-state: compare-and-set, partial runs and history (file)" {
	state_contract file
}

@test "dpone-state: compare-and-set, partial runs and history (postgres)" {
	state_contract postgres
	run psql "$DPONE_TEST_PG_URL" -Atc "select run_id, watermark from etl_state.dpone_state where job = '$JOB'"
	assert_output "r5|300"
	run psql "$DPONE_TEST_PG_URL" -Atc "select count(*) from etl_state.dpone_state_history where job = '$JOB'"
	assert_output "3"
}

@test "dpone-state: rowversion watermarks compare as bytes, not as base64 text" {
	state_manifest file
	export SQL_TYPE=rowversion
	# 0x...01 is AAAAAAAAAAE= and 0x...0d is AAAAAAAAAA0=: larger as bytes,
	# smaller as text ('0' sorts before 'E').
	low=$(python3 -c 'import base64; print(base64.b64encode(bytes(7) + b"\x01").decode())')
	high=$(python3 -c 'import base64; print(base64.b64encode(bytes(7) + b"\x0d").decode())')
	[[ "$high" < "$low" ]] || flunk "test values: $high is not below $low as text"
	summary r1 "" "\"$low\"" | dpone-state -q m.yaml commit > /dev/null
	summary r2 "\"$low\"" "\"$high\"" | dpone-state -q m.yaml commit > /dev/null
	run dpone-state m.yaml get --watermark
	assert_output "\"$high\""
}

@test "dpone-state: bigint watermarks written as text compare as numbers" {
	state_manifest file
	SQL_TYPE=bigint
	summary r1 "" '"9223372036854775"' | dpone-state -q m.yaml commit > /dev/null
	summary r2 '"9223372036854775"' '"10000000000000000"' | dpone-state -q m.yaml commit > /dev/null
	run dpone-state m.yaml get --watermark
	assert_output '"10000000000000000"'
}

# lease_contract BACKEND
lease_contract() {
	state_manifest "$1"
	run dpone-state m.yaml lock --run-id a --holder-pid $$
	assert_success
	run dpone-state m.yaml lock --run-id b --holder-pid $$
	assert_failure 7
	assert_output_contains "the job is locked by run a"
	# A commit by another run while a holds the lease is refused.
	run dpone-state m.yaml commit < <(summary b "" 5)
	assert_failure 7
	assert_output_contains "run a holds the job's lock"
	run dpone-state m.yaml unlock --run-id b
	assert_failure 7
	run dpone-state m.yaml unlock --run-id a
	assert_success
	run dpone-state m.yaml lock --run-id b --ttl 1
	assert_success
	sleep 2
	# A crashed run's lease expires.
	run dpone-state m.yaml lock --run-id c
	assert_success
	run dpone-state m.yaml unlock --force
	assert_success
	run dpone-state m.yaml get
	jq -e '.lease == null' <<< "$output" > /dev/null || flunk "$output"
}

@test "dpone-state: lock and unlock, expiry and --force (file)" {
	lease_contract file
}

@test "dpone-state: lock and unlock, expiry and --force (postgres)" {
	lease_contract postgres
}

@test "dpone-state: reset --to is audited in the history" {
	state_manifest file
	summary r1 "" '"2026-11-26T08:00:00.1234567"' | dpone-state -q m.yaml commit > /dev/null
	run dpone-state -q m.yaml reset --to 2026-01-01T00:00:00.0000000
	assert_success
	run dpone-state m.yaml get --watermark
	assert_output '"2026-01-01T00:00:00.0000000"'
	run dpone-state m.yaml history
	[ "$(tail -n 1 <<< "$output" | jq -r '[.kind, .watermark_before, .watermark_after] | @tsv')" = \
		"reset	2026-11-26T08:00:00.1234567	2026-01-01T00:00:00.0000000" ] || flunk "$output"
	# A run planned from the reset value commits.
	run dpone-state m.yaml commit < <(summary r2 '"2026-01-01T00:00:00.0000000"' '"2026-02-01T00:00:00.0000000"')
	assert_success
	run dpone-state m.yaml reset
	assert_failure 2
	assert_output_contains "reset needs --to VALUE"
}

@test "dpone-state: two commits from the same start race; exactly one wins (postgres)" {
	state_manifest postgres
	summary r0 "" 1 | dpone-state -q m.yaml commit > /dev/null
	for i in 1 2 3 4 5 6; do
		( rc=0; dpone-state -q m.yaml commit < <(summary "r$i" 1 $((i + 1))) > /dev/null 2>&1 || rc=$?; echo "$rc" > "rc$i" ) &
	done
	wait
	[ "$(cat rc* | sort | uniq -c | awk '{print $1 ":" $2}' | tr '\n' ' ')" = "1:0 5:7 " ] || flunk "$(cat rc*)"
}

@test "dpone-state: the state database down is exit 6, with where it is but no password" {
	state_manifest postgres
	export DPONE_CONN_POSTGRES_STATE="postgres://dpone:S3cret-$$@127.0.0.1:9/dpone"
	run dpone-state m.yaml get
	assert_failure 6
	assert_output_contains "cannot connect to the state database postgres_state"
	refute_output_contains "S3cret-$$"
}

@test "dpone-state: the state file's directory is created; a corrupt file is exit 6" {
	state_manifest file
	sed -i 's|^name: .*|&\nstate: {path: deep/er/state.json}|' m.yaml
	run dpone-state m.yaml lock --run-id x
	assert_success
	[ -f deep/er/state.json ]
	echo '{not json' > deep/er/state.json
	run dpone-state m.yaml get
	assert_failure 6
	assert_output_contains "deep/er/state.json:1: not a dpone state file"
}

@test "dpone-state: end offsets read back from the broker below what was delivered refuse the commit (exit 5)" {
	state_manifest file
	summary r1 "" '"2026-11-26T08:00:00.0000001"' | sed 's/"failed":0}/"failed":0,"topic_appended":1}/' > sum.ndjson
	run dpone-state m.yaml commit < sum.ndjson
	assert_failure 5
	assert_output_contains "the topic's end offsets moved by 1, fewer than the 2 messages reported delivered"
	run dpone-state -q m.yaml get --watermark
	assert_output ""
	# As many or more (a transaction's commit markers, other writers): committed.
	summary r1 "" '"2026-11-26T08:00:00.0000001"' | sed 's/"failed":0}/"failed":0,"topic_appended":3}/' > sum.ndjson
	run dpone-state m.yaml commit < sum.ndjson
	assert_success
}

@test "a state written for another job or another watermark column is refused until reset takes it over" {
	state_manifest file
	summary r1 "" '"2026-11-26T08:00:02.0000000"' | dpone-state -q m.yaml commit > /dev/null
	# Another job pointed at the same state file.
	sed "s/^name: .*/name: other_$JOB/" m.yaml > other.yaml
	printf 'state: {type: file, path: %s}\n' "$(dpone-plan --get state.path m.yaml)" >> other.yaml
	run dpone-state other.yaml get --watermark
	assert_failure 2
	assert_output_contains "holds the state of job $JOB, not of this manifest's job other_$JOB"
	summary r2 '"2026-11-26T08:00:02.0000000"' '"2026-11-26T08:00:09.0000000"' > s2.ndjson
	run dpone-state other.yaml commit < s2.ndjson
	assert_failure 2
	run dpone-state m.yaml get --watermark
	assert_output '"2026-11-26T08:00:02.0000000"'
	# The same job, its incremental column changed: the value means nothing there.
	sed -i 's/incremental_column: updated_at/incremental_column: id/' m.yaml
	run dpone-state m.yaml get --watermark
	assert_failure 2
	assert_output_contains "the state holds the watermark of column updated_at, but this manifest's runs start from column id"
	assert_output_contains "dpone-state m.yaml reset --to VALUE"
	run dpone-state m.yaml reset --to 0
	assert_success
	run dpone-state m.yaml get --watermark
	assert_success
	assert_output '0'
	run dpone-state -q other.yaml reset --to null
	assert_success
	run dpone-state other.yaml get
	assert_success
	[ "$(jq -r .job <<< "$output")" = "other_$JOB" ] || flunk "$output"
}

@test "postgres: a state written for another watermark column is refused until reset" {
	state_manifest postgres
	summary r1 "" '"2026-11-26T08:00:02.0000000"' | dpone-state -q m.yaml commit > /dev/null
	sed -i 's/incremental_column: updated_at/incremental_column: id/' m.yaml
	run dpone-state m.yaml get --watermark
	assert_failure 2
	assert_output_contains "the state holds the watermark of column updated_at"
	run dpone-state -q m.yaml reset --to 0
	assert_success
	run dpone-state m.yaml get --watermark
	assert_output '0'
}

@test "dpone-state: a lease whose holder is gone is taken over; a live one is refused naming host, pid, run, age and the command" {
	state_manifest file
	sleep 60 &
	alive=$!
	run dpone-state m.yaml lock --run-id a --holder-pid "$alive"
	assert_success
	run dpone-state m.yaml get
	jq -e --arg h "$(hostname)" --argjson p "$alive" '.lease.owner == "a" and .lease.host == $h and .lease.pid == $p
		and (.lease.pid_start | length > 0) and .lease.expires_at - .lease.acquired_at == 21600' <<< "$output" > /dev/null ||
		flunk "$output"
	run dpone-state m.yaml lock --run-id b
	assert_failure 7
	assert_output_contains "the job is locked by run a (host $(hostname), pid $alive, taken "
	assert_output_contains "if that run is gone: dpone-state $(pwd -P)/m.yaml unlock --force"
	kill "$alive"
	wait "$alive" || true
	run dpone-state m.yaml lock --run-id b --holder-pid $$
	assert_success
	assert_output_contains "taking over the lease of run a (host $(hostname), pid $alive, taken "
	assert_output_contains "that process is gone"
	# A pid that runs another process since is gone too (its start time differs).
	jq --argjson p $$ '.lease.pid = $p | .lease.pid_start = "1" | .lease.owner = "c"' "$(dpone-plan --get state.path m.yaml | tr -d '"')" > s.json
	cp s.json "$(dpone-plan --get state.path m.yaml | tr -d '"')"
	run dpone-state m.yaml lock --run-id d --holder-pid $$
	assert_success
	assert_output_contains "taking over the lease of run c"
	# A holder on another machine is never assumed gone.
	jq '.lease.host = "elsewhere" | .lease.owner = "e" | .lease.pid = 1' s.json > "$(dpone-plan --get state.path m.yaml | tr -d '"')"
	run dpone-state m.yaml lock --run-id f
	assert_failure 7
	assert_output_contains "locked by run e (host elsewhere, pid 1"
}

@test "dpone-state: state.lease_ttl sets the lease's length; it is a duration checked at load" {
	state_manifest file
	printf 'state: {lease_ttl: 90m}\n' >> m.yaml
	run dpone-state m.yaml lock --run-id a --holder-pid $$
	assert_success
	run dpone-state m.yaml get
	jq -e '.lease.expires_at - .lease.acquired_at == 5400' <<< "$output" > /dev/null || flunk "$output"
	sed -i 's/lease_ttl: 90m/lease_ttl: 90 minutes/' m.yaml
	run dpone-state m.yaml get
	assert_failure 2
	assert_output_contains "state.lease_ttl: '90 minutes' is not a duration"
}

# fold_contract BACKEND
fold_contract() {
	state_manifest "$1"
	dpone-state -q m.yaml commit < <(summary r1 "" 5) > /dev/null
	for r in r2 r3 r4; do
		dpone-state -q m.yaml commit < <(ROWS=0 summary "$r" 5 5 0) > /dev/null || flunk "commit $r"
	done
	run dpone-state m.yaml history
	[ "${#lines[@]}" -eq 2 ] || flunk "$output"
	jq -e -s '.[1].run_id == "r2" and .[1].empty_runs == 3 and .[1].last_run_id == "r4" and .[1].rows == 0' <<< "$output" > /dev/null ||
		flunk "$output"
	dpone-state -q m.yaml commit < <(summary r5 5 7) > /dev/null
	dpone-state -q m.yaml commit < <(ROWS=0 summary r6 7 7 0) > /dev/null
	run dpone-state m.yaml history
	[ "${#lines[@]}" -eq 4 ] || flunk "$output"
}

@test "dpone-state: consecutive commits that found nothing are one history entry with a count (file)" {
	fold_contract file
}

@test "dpone-state: consecutive commits that found nothing are one history entry with a count (postgres)" {
	fold_contract postgres
}
