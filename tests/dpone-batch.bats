#!/usr/bin/env bats
# dpone batch run, end to end: SQL Server (stand-in or DPONE_TEST_MSSQL_URL)
# -> dpone-extract | dpone-produce -> Kafka (stand-in or
# DPONE_TEST_KAFKA_BOOTSTRAP), state in a file or PostgreSQL. Each failure
# test checks the exit status, the topic and the state, then that a rerun
# delivers what was missing. Faults use private stand-ins.

load test_helper
load stand_ins

stand_ins_per_file mssql kafka pg --faults mssql kafka

setup() {
	common_setup
	load_env
	T="b$BATS_TEST_NUMBER"
	TOPIC="batch$BATS_TEST_NUMBER-$$"
}

teardown() {
	# A test's private PostgreSQL goes, whether the test passed or not.
	[ ! -f "$BATS_TEST_TMPDIR/pg/pg.dir" ] || sh "$BATS_TEST_DIRNAME/pg" down "$BATS_TEST_TMPDIR/pg"
	common_teardown
}

# orders N: table $T with orders 1..N, updated_at one second apart.
orders() {
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (order_id int NOT NULL PRIMARY KEY, customer nvarchar(40) NOT NULL, updated_at datetime2(7) NOT NULL)
SQL
	add_orders 1 "$1"
}

# add_orders FIRST LAST: more orders, later than every earlier one.
add_orders() {
	seq "$1" "$2" | awk -v t="$T" '{ printf "INSERT INTO %s (order_id, customer, updated_at) VALUES (%d, N'"'"'c%d'"'"', '"'"'2026-11-26 08:%02d:%02d.1234567'"'"')\n", t, $1, $1, int($1 / 60), $1 % 60 }' | sql
}

# batch_manifest [SINK-OPTIONS] [STATE-YAML]: an incremental job on $T.
batch_manifest() {
	if [ -n "${KAFKAD_CONTROL:-}" ]; then
		control "$KAFKAD_CONTROL" "topic create $TOPIC 3 1" > /dev/null
	fi
	cat > m.yaml <<YAML
name: batch_$T
source:
  type: mssql
  connection_id: mssql_dwh
  table: {name: $T}
  options: {incremental_column: updated_at}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: $TOPIC
  strategy: {mode: incremental_append, unique_key: [order_id]}
  options: {topic_config: {auto_create: true, partitions: 3}, dpone_headers: [run_id, source, watermark]${1:+, $1}}
${2:-}
YAML
}

# keys: the distinct order ids in the topic, sorted.
keys() {
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -f '%k\n' | jq -r .order_id | sort -n | uniq
}

messages() {
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -f '%k\n' | wc -l
}

watermark() {
	dpone-state -q m.yaml get --watermark
}

@test "batch run: the first run loads the table, the next only new rows, a run with nothing new nothing" {
	orders 20
	batch_manifest
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "committed: 20 rows, 20 messages in"
	[ "$(keys | wc -l)" -eq 20 ]
	[ "$(watermark)" = '"2026-11-26T08:00:20.1234567"' ] || flunk "state: $(watermark)"
	# dpone.source names the database the session used, as documented.
	run kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -c 1 -f '%h\n'
	assert_output_contains "dpone.source=$DPONE_TEST_MSSQL_DATABASE.dbo.$T,"
	add_orders 21 25
	run dpone batch run m.yaml
	assert_success
	[ "$(messages)" -eq 25 ] || flunk "$(messages) messages: rows were published twice"
	[ "$(watermark)" = '"2026-11-26T08:00:25.1234567"' ]
	run dpone batch run m.yaml
	assert_success
	[ "$(messages)" -eq 25 ]
	run dpone-state m.yaml history
	[ "$(jq -r .rows <<< "$output" | tr '\n' ' ')" = "20 5 0 " ] || flunk "$output"
	# Each commit says where its messages are: a message is traced to its run by them.
	[ "$(jq -r '[.partitions[].messages] | add // 0' <<< "$output" | tr '\n' ' ')" = "20 5 0 " ] || flunk "$output"
	# The lease was given back after each run.
	run dpone-state m.yaml get
	jq -e '.lease == null' <<< "$output" > /dev/null || flunk "$output"
}

@test "batch run with state in PostgreSQL" {
	orders 5
	batch_manifest "" "state: {type: postgres, connection_id: postgres_state}"
	export DPONE_CONN_POSTGRES_STATE="$DPONE_TEST_PG_URL"
	run dpone batch run m.yaml
	assert_success
	add_orders 6 7
	run dpone batch run m.yaml
	assert_success
	[ "$(keys | tr '\n' ' ')" = "1 2 3 4 5 6 7 " ]
	run psql "$DPONE_TEST_PG_URL" -Atc "select watermark from etl_state.dpone_state where job = 'batch_$T'"
	assert_output '"2026-11-26T08:00:07.1234567"'
}

@test "batch run --from on a new job starts there; on a job with state it must match the state" {
	orders 10
	batch_manifest
	run dpone batch run m.yaml --from 2026-11-26T08:00:07.1234567
	assert_success
	[ "$(keys | tr '\n' ' ')" = "8 9 10 " ]
	add_orders 11 12
	run dpone batch run m.yaml --from 2026-11-26T08:00:02.1234567
	assert_failure 7
	assert_output_contains "state moved since run"
	[ "$(watermark)" = '"2026-11-26T08:00:10.1234567"' ]
}

@test "batch run --to: a small bounded window first, then the rest" {
	orders 10
	batch_manifest
	run dpone batch run m.yaml --to 2026-11-26T08:00:04.1234567
	assert_success
	[ "$(keys | tr '\n' ' ')" = "1 2 3 4 " ]
	run dpone batch run m.yaml
	assert_success
	[ "$(keys | wc -l)" -eq 10 ] && [ "$(messages)" -eq 10 ]
}

@test "batch run: the extract dies mid-stream -> exit 12 (transient), state kept; the rerun delivers the rest" {
	use_fault_stand_ins
	orders 10
	batch_manifest
	# No retry within the run: the next run delivers the rest.
	sed -i 's/options: {incremental_column: updated_at}/options: {incremental_column: updated_at, retries: 0}/' m.yaml
	dpone batch run m.yaml > /dev/null 2>&1
	add_orders 11 30
	control "$MSSQLD_CONTROL" "fault drop-after-rows 7 ORDER BY"
	run dpone batch run m.yaml
	assert_failure 12
	assert_output_contains "state not advanced"
	[ "$(watermark)" = '"2026-11-26T08:00:10.1234567"' ]
	run dpone batch run m.yaml
	assert_success
	[ "$(keys | wc -l)" -eq 30 ] || flunk "$(keys | tr '\n' ' ')"
	[ "$(watermark)" = '"2026-11-26T08:00:30.1234567"' ]
}

@test "batch run: brokers down for the whole run -> exit 5, state kept; after recovery the rerun delivers" {
	use_fault_stand_ins
	orders 10
	batch_manifest "delivery: {message_timeout_ms: 1500}"
	control "$KAFKAD_CONTROL" "broker down -1" > /dev/null
	run dpone batch run m.yaml
	control "$KAFKAD_CONTROL" "broker up -1" > /dev/null
	assert_failure 5
	[ -z "$(watermark)" ]
	run dpone batch run m.yaml
	assert_success
	[ "$(keys | wc -l)" -eq 10 ]
}

@test "batch run: a second run of a locked job does not start (exit 7)" {
	orders 3
	batch_manifest
	dpone-state -q m.yaml lock --run-id other-run
	run dpone batch run m.yaml
	assert_failure 7
	assert_output_contains "the job is locked by run other-run"
	[ "$(messages)" -eq 0 ]
	dpone-state -q m.yaml unlock --run-id other-run
	run dpone batch run m.yaml
	assert_success
}

@test "batch run: SIGTERM while the server stalls -> the query is cancelled, exit 130 within seconds, state kept, the lease given back" {
	use_fault_stand_ins
	orders 10
	batch_manifest
	control "$MSSQLD_CONTROL" "fault stall-after-rows 3 20000 ORDER BY"
	dpone batch run m.yaml > out.txt 2>&1 &
	pid=$!
	sleep 1
	kill -TERM "$pid"
	signalled=$(date +%s%N)
	rc=0
	wait "$pid" || rc=$?
	# An upper bound with slack, not a performance threshold: the stall is 20 s.
	[ "$(elapsed_ms "$signalled")" -lt 5000 ] || flunk "took $(elapsed_ms "$signalled") ms: $(cat out.txt)"
	[ "$rc" -eq 130 ] || flunk "exit $rc: $(cat out.txt)"
	grep -q "^dpone-extract: reading failed after 3 rows: interrupted: the query was cancelled" out.txt || flunk "$(cat out.txt)"
	grep -q "^dpone: batch run interrupted: dpone-extract stopped (reading failed after 3 rows: interrupted" out.txt ||
		flunk "$(cat out.txt)"
	[ -z "$(watermark)" ]
	run dpone-state m.yaml get
	jq -e '.lease == null' <<< "$output" > /dev/null || flunk "$output"
	run dpone batch run m.yaml
	assert_success
	[ "$(keys | wc -l)" -eq 10 ]
}

@test "batch run: checks that pass (including the hash of extracted vs published rows) let state advance" {
	orders 12
	batch_manifest "delivery: {mode: exactly_once}" 'quality:
  checks:
    - {type: min_rows, threshold: 1}
    - {type: unique}
    - {type: not_null, column: customer}
    - {type: hash_reconciliation}'
	run dpone batch run m.yaml
	assert_success
	[ "$(watermark)" = '"2026-11-26T08:00:12.1234567"' ]
	run dpone-state m.yaml history
	jq -e '.checks.passed and (.checks.results | length) == 4' <<< "$output" > /dev/null || flunk "$output"
}

@test "batch run: a failed check in fail mode -> exit 8, the transaction aborted, state kept; warn mode advances" {
	orders 3
	batch_manifest "delivery: {mode: exactly_once}" 'quality:
  checks:
    - {type: min_rows, threshold: 100}'
	run dpone batch run m.yaml
	assert_failure 8
	assert_output_contains "min_rows check failed: 3 rows, at least 100 wanted"
	assert_output_contains "transaction aborted"
	[ -z "$(watermark)" ]
	sed -i 's/^quality:/quality:\n  mode: warn/' m.yaml
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "min_rows check failed (warning only)"
	[ "$(watermark)" = '"2026-11-26T08:00:03.1234567"' ]
}

@test "batch run leaves its artifacts, without secrets; dpone runs list/show read them; old runs are pruned" {
	use_fault_stand_ins
	orders 4
	batch_manifest "" 'observability: {artifacts: {keep: 2}}'
	run dpone batch run m.yaml
	assert_success
	run dpone runs list m.yaml
	assert_success
	[ "$(sed -n 2p <<< "$output" | awk '{print $2, $3}')" = "committed 0" ] || flunk "$output"
	dir=$(ls -d .dpone/runs/batch_$T/*/)
	for f in manifest.json state-before.json state-after.json summary.ndjson extract.stderr produce.stderr status; do
		[ -f "$dir/$f" ] || flunk "no $f in $dir"
	done
	# No check needs the rows: no dpone-check ran, so it left no stderr.
	[ ! -e "$dir/check.stderr" ] || flunk "a check stage ran"
	grep -q '^commit 0$' "$dir/status"
	jq -e '.watermark.value == "2026-11-26T08:00:04.1234567"' "$dir/state-after.json" > /dev/null
	grep -q '^\["delivery"' "$dir/summary.ndjson"
	password=$(sed 's|^mssql://[^:]*:\([^@]*\)@.*|\1|' <<< "$DPONE_CONN_MSSQL_DWH")
	[ -n "$password" ] && ! grep -rqF -- "$password" .dpone || flunk "the password is in an artifact"
	run dpone runs show m.yaml "$(basename "$dir")"
	assert_success
	assert_output_contains "result committed"
	assert_output_contains "summary.ndjson"
	# A failed run is recorded as failed, with the failing stage's stderr
	# (no retry: a deadlock victim would be retried).
	sed -i 's/options: {incremental_column: updated_at}/options: {incremental_column: updated_at, retries: 0}/' m.yaml
	control "$MSSQLD_CONTROL" "fault error-after-rows 1 ORDER BY" > /dev/null
	add_orders 5 6
	run dpone batch run m.yaml
	assert_failure 12
	failed=$(ls -d .dpone/runs/batch_$T/*/ | tail -n 1)
	grep -q '^result failed$' "$failed/status" && grep -q '^exit 12$' "$failed/status"
	grep -q "SQL Server error 1205" "$failed/extract.stderr"
	# keep: 2 leaves the two newest.
	run dpone batch run m.yaml
	assert_success
	[ "$(ls .dpone/runs/batch_$T | wc -l)" -eq 2 ]
	run dpone runs show m.yaml ../../etc
	assert_failure 2
}

@test "pruning removes only dpone's run directories; artifacts are private; a shared path is refused" {
	orders 2
	mkdir -p shared/keep-me shared/20250101T000000Z-1 shared/20250101T000000Z-2 elsewhere
	touch shared/Makefile shared/backup.tar elsewhere/precious
	# Looks like a run but was not written by dpone (no status naming it), and
	# a link to a directory named like a run.
	echo "run_id someone-else" > shared/20250101T000000Z-1/status
	ln -s ../elsewhere shared/20250101T000000Z-3
	batch_manifest "" 'observability: {artifacts: {path: shared, keep: 1}}'
	for _ in 1 2 3; do
		run dpone batch run m.yaml
		assert_success
	done
	[ -f shared/Makefile ] && [ -f shared/backup.tar ] && [ -d shared/keep-me ] || flunk "$(ls -la shared)"
	[ -d shared/20250101T000000Z-1 ] && [ -d shared/20250101T000000Z-2 ] || flunk "$(ls -la shared)"
	[ -L shared/20250101T000000Z-3 ] && [ -f elsewhere/precious ] || flunk "$(ls -la shared elsewhere)"
	runs=$(find shared -maxdepth 1 -name '2026*' | wc -l)
	[ "$runs" -eq 1 ] || flunk "keep: 1 left $runs runs: $(ls shared)"
	dir=$(find shared -maxdepth 1 -name '2026*')
	[ "$(stat -c %a "$dir")" = 700 ] || flunk "run directory mode $(stat -c %a "$dir")"
	for f in "$dir"/*; do
		[ "$(stat -c %a "$f")" = 600 ] || flunk "$f has mode $(stat -c %a "$f")"
	done
	# The root, the home directory and the manifest's own directory are refused.
	for path in / "$HOME" .; do
		sed -i "s|^observability:.*|observability: {artifacts: {path: '$path'}}|" m.yaml
		run dpone batch run m.yaml
		assert_failure 2
		assert_output_contains "observability.artifacts.path"
		run dpone plan m.yaml
		assert_failure 2
	done
}

@test "source_target_count: the source is counted again for the stream's boundary; a missing row fails it" {
	orders 5
	batch_manifest "" 'quality:
  checks:
    - {type: source_target_count}'
	run dpone batch run m.yaml
	assert_success
	run dpone-state m.yaml history
	jq -e '.checks.results[0].status == "pass" and .checks.results[0].source_rows == 5' <<< "$output" > /dev/null || flunk "$output"
	add_orders 6 8
	dpone-extract -q m.yaml --from '"2026-11-26T08:00:05.1234567"' > in.ndjson
	# The same boundary with one row lost on the way.
	sed '3d; s/^\["end",{"rows":3/["end",{"rows":2/' in.ndjson > lost.ndjson
	run bash -c 'dpone-check m.yaml < lost.ndjson > out.ndjson'
	assert_failure 8
	assert_output_contains "source_target_count check failed: the source has 3 rows in the boundary, the stream 2 (difference 1, 0 allowed)"
	# No check stage needed: dpone-extract counted the source into its end,
	# and dpone-produce decides the check from it, the same way.
	run dpone-plan --get run.check_stage m.yaml
	assert_output false
	jq -e 'select(.[0]? == "end") | .[1].source_rows == 3' in.ndjson > /dev/null || flunk "$(tail -n 1 in.ndjson)"
	run bash -c 'dpone-produce --dry-run m.yaml < lost.ndjson > out.ndjson'
	assert_failure 8
	assert_output_contains "source_target_count check failed: the source has 3 rows in the boundary, the stream 2 (difference 1, 0 allowed)"
	sed -i 's/{type: source_target_count}/{type: source_target_count, tolerance: {mode: absolute, value: 1}}/' m.yaml
	run bash -c 'dpone-check m.yaml < lost.ndjson > out.ndjson'
	assert_success
	run bash -c 'dpone-produce --dry-run m.yaml < lost.ndjson > out.ndjson'
	assert_success
}

# wait_for_stage NAME: until a dpone-NAME of this test's job runs ($STAGE_PID):
# one whose working directory is this test's, so that nothing else running
# dpone on the machine (another suite, a chaos run) is ever picked.
wait_for_stage() {
	STAGE_PID=
	local pid here
	here=$(pwd -P)
	for _ in $(seq 1 200); do
		for pid in $(pgrep -f "dpone-$1 .*m.yaml"); do
			if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$here" ]; then
				STAGE_PID=$pid
				return 0
			fi
		done
		sleep 0.05
	done
	flunk "dpone-$1 never ran"
}

@test "batch run from three working directories: one state, one lock, one artifact tree, beside the manifest" {
	use_fault_stand_ins
	orders 3
	mkdir -p job elsewhere "$HOME"
	batch_manifest
	mv m.yaml job/m.yaml
	# From the job's directory, from its parent, from HOME (as cron does).
	(cd job && dpone batch run m.yaml) > run1.txt 2>&1 || flunk "$(cat run1.txt)"
	add_orders 4 4
	dpone batch run job/m.yaml > run2.txt 2>&1 || flunk "$(cat run2.txt)"
	grep -q "committed: 1 row" run2.txt || flunk "the second run did not start from the first's state: $(cat run2.txt)"
	(cd "$HOME" && dpone batch run "$TEST_TMP/job/m.yaml") > run3.txt 2>&1 || flunk "$(cat run3.txt)"
	grep -q "committed: 0 rows" run3.txt || flunk "the third run did not start from the second's state: $(cat run3.txt)"
	[ -f "job/.dpone/state/batch_$T.json" ] || flunk "$(find . -name '*.json' -path '*state*')"
	[ "$(find . -path '*/.dpone/state/*.json' | wc -l)" -eq 1 ] || flunk "$(find . -path '*/.dpone/state/*')"
	[ "$(find job/.dpone/runs/batch_$T -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 3 ] || flunk "$(find . -path '*runs*')"
	[ ! -e .dpone ] && [ ! -e "$HOME/.dpone" ] || flunk "a working directory got a .dpone of its own"
	# The lock: a run started elsewhere sees the one that holds it.
	control "$MSSQLD_CONTROL" "fault stall-after-rows 0 3000 customer" > /dev/null
	add_orders 5 5
	dpone batch run job/m.yaml > slow.txt 2>&1 &
	pid=$!
	wait_for_stage extract
	run sh -c "cd '$HOME' && dpone batch run '$TEST_TMP/job/m.yaml'"
	assert_failure 7
	wait "$pid" || flunk "$(cat slow.txt)"
	# plan shows the paths it uses, absolute.
	run sh -c "cd '$HOME' && dpone plan '$TEST_TMP/job/m.yaml' --format json"
	assert_success
	[ "$(jq -r .state.path <<< "$output")" = "$(cd job && pwd -P)/.dpone/state/batch_$T.json" ] || flunk "$output"
}

@test "batch run: each stage gets only the DPONE_CONN_* variables of the connections it uses" {
	use_fault_stand_ins
	orders 4
	export DPONE_CONN_POSTGRES_STATE="$DPONE_TEST_PG_URL"
	# A check that reads rows, so that dpone-check runs too.
	batch_manifest "" "state: {type: postgres, connection_id: postgres_state, table: {schema: env_$T}}
quality: {checks: [{type: not_null, columns: [customer]}]}"
	export DPONE_CONN_UNRELATED="mssql://u:Pl4nted-unrelated@127.0.0.1:9/x"
	control "$MSSQLD_CONTROL" "fault stall-after-rows 2 2000 customer" > /dev/null
	dpone batch run m.yaml > out.txt 2>&1 &
	pid=$!
	for stage in extract check produce; do
		wait_for_stage "$stage"
		tr '\0' '\n' < "/proc/$STAGE_PID/environ" | sed -n 's/^\(DPONE_CONN_[A-Z_]*\)=.*/\1/p' | sort | tr '\n' ' ' > "$stage.env"
	done
	wait "$pid" || flunk "$(cat out.txt)"
	[ "$(cat extract.env)" = "DPONE_CONN_MSSQL_DWH DPONE_CONN_POSTGRES_STATE " ] || flunk "extract: $(cat extract.env)"
	[ "$(cat check.env)" = "DPONE_CONN_MSSQL_DWH DPONE_CONN_POSTGRES_STATE " ] || flunk "check: $(cat check.env)"
	[ "$(cat produce.env)" = "DPONE_CONN_KAFKA_CLUSTER " ] || flunk "produce: $(cat produce.env)"
}

@test "batch run: the state database goes down before the commit -> exit 6, the commit waits; the next run makes it, publishing nothing again" {
	use_fault_stand_ins
	sh "$BATS_TEST_DIRNAME/pg" up "$BATS_TEST_TMPDIR/pg" > /dev/null
	# shellcheck disable=SC1091
	. "$BATS_TEST_TMPDIR/pg/pg.env"
	export DPONE_CONN_POSTGRES_STATE="$DPONE_TEST_PG_URL"
	orders 6
	batch_manifest "" "state: {type: postgres, connection_id: postgres_state}"
	control "$MSSQLD_CONTROL" "fault stall-after-rows 2 3000 customer" > /dev/null
	dpone batch run m.yaml > out.txt 2>&1 &
	pid=$!
	# The extract runs once the lease is taken and the watermark read; its
	# SELECT then stalls for 3 s: the database goes down meanwhile.
	wait_for_stage extract
	sleep 0.5
	sh "$BATS_TEST_DIRNAME/pg" stop "$BATS_TEST_TMPDIR/pg"
	rc=0
	wait "$pid" || rc=$?
	sh "$BATS_TEST_DIRNAME/pg" start "$BATS_TEST_TMPDIR/pg"
	[ "$rc" -eq 6 ] || flunk "exit $rc: $(cat out.txt)"
	# Tried again, then kept for the next run.
	grep -q "trying again in 3 s" out.txt || flunk "$(cat out.txt)"
	grep -q "the next run of this job commits it first" out.txt || flunk "$(cat out.txt)"
	[ -f .dpone/pending/batch_$T/summary.ndjson ]
	[ "$(messages)" -eq 6 ]
	[ -z "$(watermark)" ]
	# The lease could not be given back while the database was down; its
	# holder is gone, so the next run takes it over, no manual step.
	run dpone-state -q m.yaml get
	jq -e '.lease.owner != null' <<< "$output" > /dev/null || flunk "no lease left behind: $output"
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "taking over the lease of run "
	assert_output_contains "that process is gone"
	assert_output_contains "committing an earlier run that delivered but was not committed"
	# exactly what was delivered once: no row published twice
	[ "$(keys | wc -l)" -eq 6 ] && [ "$(messages)" -eq 6 ] || flunk "$(messages) messages"
	[ "$(watermark)" = '"2026-11-26T08:00:06.1234567"' ]
	[ ! -e .dpone/pending/batch_$T ]
	dpone-state -q m.yaml history | jq -e -s 'length == 2 and .[0].rows == 6 and .[1].rows == 0'
}

# shim_bin STAGE ACTION: a copy of dpone in ./shim whose dpone-STAGE runs
# the real one and then does ACTION (sh, e.g. 'kill -KILL $$': the stage
# dies after it did all its work).
shim_bin() {
	rm -rf shim
	mkdir shim
	cp "$DPONE_BIN/dpone" shim/dpone
	for s in extract check produce state plan; do
		ln -s "$DPONE_BIN/dpone-$s" "shim/dpone-$s"
	done
	rm "shim/dpone-$1"
	printf '#!/bin/sh\n"%s/dpone-%s" "$@"\n%s\n' "$DPONE_BIN" "$1" "$2" > "shim/dpone-$1"
	chmod +x "shim/dpone-$1"
}

@test "batch run: a stage killed after the run was delivered -> state follows the run; the rerun publishes nothing again" {
	orders 5
	batch_manifest "delivery: {mode: exactly_once}"
	# dpone-produce killed after its transaction committed
	shim_bin produce 'kill -KILL $$'
	run shim/dpone batch run m.yaml
	assert_success
	assert_output_contains "dpone-produce was killed by signal 9 after the run was delivered; state follows the delivered run"
	assert_output_contains "committed: 5 rows, 5 messages"
	[ "$(watermark)" = '"2026-11-26T08:00:05.1234567"' ] || flunk "state: $(watermark)"
	# dpone-extract killed after its stream ended
	add_orders 6 8
	shim_bin extract 'kill -KILL $$'
	run shim/dpone batch run m.yaml
	assert_success
	assert_output_contains "dpone-extract was killed by signal 9 after the run was delivered"
	[ "$(watermark)" = '"2026-11-26T08:00:08.1234567"' ] || flunk "state: $(watermark)"
	run dpone batch run m.yaml
	assert_success
	[ "$(messages)" -eq 8 ] || flunk "$(messages) messages: rows were published twice"
	dpone-state -q m.yaml history | jq -e -s 'map(.rows) == [5, 3, 0]' > /dev/null
	# Without a commit record (killed before delivering) the run fails as before.
	add_orders 9 9
	shim_bin produce 'exit 5'
	printf '#!/bin/sh\nexit 5\n' > shim/dpone-produce
	run shim/dpone batch run m.yaml
	assert_failure 5
	[ "$(watermark)" = '"2026-11-26T08:00:08.1234567"' ]
}

@test "batch run: the wrapper killed after the run was delivered -> the next run commits it, publishing nothing again" {
	orders 4
	batch_manifest
	# dpone-produce delivers, then the wrapper (its parent) is killed.
	shim_bin produce 'kill -KILL $PPID'
	rc=0
	shim/dpone batch run m.yaml > out.txt 2>&1 || rc=$?
	[ "$rc" -eq 137 ] || flunk "exit $rc: $(cat out.txt)"
	[ -f .dpone/pending/batch_$T/summary.ndjson ]
	[ -z "$(watermark)" ]
	# The lease of the killed run lapses, or is taken away by hand.
	dpone-state -q m.yaml unlock --force
	add_orders 5 6
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "committing an earlier run that delivered but was not committed"
	assert_output_contains "committed: 2 rows"
	[ "$(keys | wc -l)" -eq 6 ] && [ "$(messages)" -eq 6 ] || flunk "$(messages) messages"
	dpone-state -q m.yaml history | jq -e -s 'map(.rows) == [4, 2]' > /dev/null
}

@test "batch run: a kept commit that no longer applies is dropped with a warning; a refused one is dropped and its rows repeated" {
	orders 3
	batch_manifest "" "observability: {artifacts: {enabled: true, path: runs}}"
	dpone batch run m.yaml 2> /dev/null
	# The summary of the run already committed, as if its commit had been kept.
	mkdir -p .dpone/pending/batch_$T
	cp runs/*/summary.ndjson .dpone/pending/batch_$T/summary.ndjson
	add_orders 4 4
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "the earlier run's commit no longer applies"
	assert_output_contains "is already committed"
	[ "$(messages)" -eq 4 ]
	[ ! -e .dpone/pending/batch_$T ]
	# A kept summary the commit refuses (no end): dropped, and this run
	# goes on from the committed state, publishing only what is new.
	mkdir -p .dpone/pending/batch_$T
	head -n 1 "$(ls runs/*/summary.ndjson | head -n 1)" > .dpone/pending/batch_$T/summary.ndjson
	add_orders 5 5
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "the earlier run's commit is refused; this run repeats its rows"
	[ "$(messages)" -eq 5 ]
	[ ! -e .dpone/pending/batch_$T ]
}

@test "batch run: two runs of one job at once -> one runs, the other is refused (exit 7); nothing is lost" {
	use_fault_stand_ins
	orders 6
	batch_manifest
	control "$MSSQLD_CONTROL" "fault stall-after-rows 2 2000 customer" > /dev/null
	dpone batch run m.yaml > first.txt 2>&1 &
	first=$!
	wait_for_stage extract
	rc2=0
	dpone batch run m.yaml > second.txt 2>&1 || rc2=$?
	rc1=0
	wait "$first" || rc1=$?
	[ "$rc1" -eq 0 ] || flunk "first: exit $rc1: $(cat first.txt)"
	[ "$rc2" -eq 7 ] || flunk "second: exit $rc2: $(cat second.txt)"
	grep -q "the job is locked by run" second.txt
	[ "$(keys | wc -l)" -eq 6 ]
	[ "$(watermark)" = '"2026-11-26T08:00:06.1234567"' ]
}

# kill_stage NAME: SIGTERM to the running dpone-NAME of this test's job.
kill_stage() {
	wait_for_stage "$1"
	kill -TERM "$STAGE_PID"
}

@test "batch run: SIGTERM to any one stage -> that stage is named, exit 130, state kept" {
	use_fault_stand_ins
	orders 6
	batch_manifest "" "quality: {checks: [{type: not_null, columns: [customer]}]}"
	for stage in extract check produce; do
		control "$MSSQLD_CONTROL" "fault stall-after-rows 2 3000 customer" > /dev/null
		dpone batch run m.yaml > out.txt 2>&1 &
		pid=$!
		sleep 0.5
		kill_stage "$stage"
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 130 ] || flunk "$stage: exit $rc: $(cat out.txt)"
		grep -q "dpone-$stage exited 130 (interrupted)" out.txt || flunk "$stage: $(cat out.txt)"
		[ -z "$(watermark)" ] || flunk "$stage: state moved"
	done
	run dpone batch run m.yaml
	assert_success
	[ "$(keys | wc -l)" -eq 6 ]
}

@test "schema evolution end to end: widening applied and recorded, a breaking change stops the run, schema --clear accepts it" {
	orders 3
	batch_manifest
	run dpone batch run m.yaml
	assert_success
	run dpone-state m.yaml schema
	jq -e 'map(.name) == ["order_id", "customer", "updated_at"]' <<< "$output" > /dev/null || flunk "$output"
	# customer widened, a column added; rows 1-3 kept, 4 new.
	sql <<SQL
DROP TABLE $T
CREATE TABLE $T (order_id int NOT NULL PRIMARY KEY, customer nvarchar(100) NOT NULL, updated_at datetime2(7) NOT NULL, note varchar(10) NULL)
SQL
	add_orders 1 4
	run dpone-plan --format json m.yaml
	jq -e '.schema.verdict | startswith("compatible")' <<< "$output" > /dev/null || flunk "$output"
	run dpone batch run m.yaml
	assert_success
	run dpone-state m.yaml history
	jq -se '.[-1].schema_changes | map(.column + ":" + .change) == ["customer:widened", "note:added"]' <<< "$output" > /dev/null ||
		flunk "$output"
	# A breaking change: customer becomes an int.
	sql <<SQL
DROP TABLE $T
CREATE TABLE $T (order_id int NOT NULL PRIMARY KEY, customer int NOT NULL, updated_at datetime2(7) NOT NULL, note varchar(10) NULL)
INSERT INTO $T VALUES (5, 42, '2026-11-26 09:00:00', NULL)
SQL
	run dpone-plan m.yaml
	assert_output_contains "breaking: the run will fail before anything is published"
	assert_output_contains "| customer | type_changed | nvarchar(100) | int | yes | fails the run |"
	before=$(messages)
	run dpone batch run m.yaml
	assert_failure 8
	assert_output_contains "customer type_changed (nvarchar(100) -> int); nothing was published"
	[ "$(messages)" -eq "$before" ] || flunk "messages were published"
	[ "$(watermark)" = '"2026-11-26T08:00:04.1234567"' ]
	# The consumers are ready: accept the new schema.
	dpone-state -q m.yaml schema --clear
	run dpone batch run m.yaml
	assert_success
	[ "$(watermark)" = '"2026-11-26T09:00:00.0000000"' ]
	run dpone-state m.yaml history
	jq -se 'map(.kind) | index("schema_clear") != null' <<< "$output" > /dev/null || flunk "$output"
}

@test "hostile identifiers end to end: unicode, quotes, brackets and semicolons in table, column and key names" {
	sql <<'SQL'
DROP TABLE IF EXISTS [Заказы "q'; x]]--]
CREATE TABLE [Заказы "q'; x]]--] ([ключ]]"'] int NOT NULL PRIMARY KEY, [naïve "col"; DROP] nvarchar(20) NULL, [ts 時間] datetime2(7) NOT NULL)
INSERT INTO [Заказы "q'; x]]--] VALUES (1, N'ünï "q" ;', '2026-11-26 08:00:01'), (2, NULL, '2026-11-26 08:00:02')
SQL
	[ -z "${KAFKAD_CONTROL:-}" ] || control "$KAFKAD_CONTROL" "topic create $TOPIC 1 1" > /dev/null
	cat > m.yaml <<YAML
name: hostile_$T
source:
  type: mssql
  connection_id: mssql_dwh
  table: {name: "Заказы \"q'; x]--"}
  options: {incremental_column: "ts 時間"}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: $TOPIC
  strategy: {mode: incremental_merge, unique_key: ["ключ]\"'"]}
  options: {topic_config: {auto_create: true}}
quality:
  checks: [{type: not_null, columns: ["ключ]\"'"]}, {type: unique}, {type: source_target_count, tolerance_pct: 0}]
YAML
	run dpone plan m.yaml
	assert_success
	assert_output_contains "FROM [dbo].[Заказы \"q'; x]]--]"
	run dpone batch run m.yaml
	assert_success
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -f '%k %s\n' > got.txt
	grep -qxF '{"ключ]\"'"'"'":1} {"ключ]\"'"'"'":1,"naïve \"col\"; DROP":"ünï \"q\" ;","ts 時間":"2026-11-26T08:00:01.0000000"}' got.txt ||
		flunk "$(cat got.txt)"
	[ "$(wc -l < got.txt)" -eq 2 ]
	[ "$(dpone-state -q m.yaml get --watermark)" = '"2026-11-26T08:00:02.0000000"' ]
	run bash -c "echo \"SELECT COUNT(*) FROM [Заказы \\\"q'; x]]--]\" | sql"
	assert_output "2"
}

@test "dpone doctor: every connection checked by the stage that uses it; each failure with a fix and its exit status" {
	use_fault_stand_ins
	orders 2
	batch_manifest "" "state: {type: postgres, connection_id: postgres_state}"
	sh "$BATS_TEST_DIRNAME/pg" up "$BATS_TEST_TMPDIR/pg" > /dev/null
	# shellcheck disable=SC1091
	. "$BATS_TEST_TMPDIR/pg/pg.env"
	export DPONE_CONN_POSTGRES_STATE="$DPONE_TEST_PG_URL"
	run dpone doctor m.yaml
	assert_success
	assert_output_contains "ok    source     logged in; dbo.$T readable, 3 columns (freetds v"
	assert_output_contains "ok    sink       3 brokers; topic $TOPIC: exists (librdkafka "
	assert_output_contains "ok    state      postgres state readable and writable"
	assert_output_contains "ok    clock      SQL Server's clock is"
	assert_output_contains "dpone doctor: ready to run"
	run dpone doctor --format json m.yaml
	assert_success
	jq -e '.ready == true and (.checks | map(.check) | index("source") != null) and all(.checks[]; .status != "fail")' \
		<<< "$output" > /dev/null || flunk "$output"
	# A wrong password: the source fails with the server's message and a fix.
	good=$DPONE_CONN_MSSQL_DWH
	export DPONE_CONN_MSSQL_DWH="mssql://$DPONE_TEST_MSSQL_USER:wrong@$DPONE_TEST_MSSQL_HOST:$DPONE_TEST_MSSQL_PORT/$DPONE_TEST_MSSQL_DATABASE"
	run dpone doctor m.yaml
	assert_failure 4
	assert_output_contains "fail  source"
	assert_output_contains "fix: check the source connection"
	assert_output_contains "dpone doctor: something above blocks a run"
	export DPONE_CONN_MSSQL_DWH=$good
	# A missing topic without auto_create; the state database down; artifacts under a file.
	sed -i 's/auto_create: true, //' m.yaml
	control "$KAFKAD_CONTROL" "topic error $TOPIC UNKNOWN_TOPIC_OR_PART" > /dev/null
	sh "$BATS_TEST_DIRNAME/pg" stop "$BATS_TEST_TMPDIR/pg"
	touch afile
	printf 'observability: {artifacts: {path: afile/runs}}\n' >> m.yaml
	run dpone doctor --format json m.yaml
	sh "$BATS_TEST_DIRNAME/pg" start "$BATS_TEST_TMPDIR/pg"
	assert_failure 5
	jq -e '.ready == false
		and (.checks[] | select(.check == "sink") | .status == "fail" and .exit == 5 and (.detail | contains("create it, or set")))
		and (.checks[] | select(.check == "state") | .status == "fail" and .exit == 6 and (.fix | length > 0))
		and (.checks[] | select(.check == "artifacts") | .status == "fail" and .detail == $dir + "/afile/runs: not a directory")' \
		--arg dir "$(pwd -P)" <<< "$output" > /dev/null || flunk "$output"
}

@test "dpone doctor without a manifest lists the stages; --profile picks connections.NAME.yaml" {
	run dpone doctor
	assert_success
	assert_output_contains "ok    stages     dpone-extract 0.1.0"
	assert_output_contains "give a MANIFEST to check its connections"
	run dpone doctor --profile staging
	assert_failure 2
	assert_output_contains "profile staging: no ./.dpone/connections.staging.yaml"
	orders 1
	batch_manifest
	sed -i 's/connection_id: mssql_dwh/connection_id: mssql_dwh\n  connection_type: file/' m.yaml
	mkdir .dpone
	printf 'connections:\n  mssql_dwh: {url: "%s"}\n' "$DPONE_CONN_MSSQL_DWH" > .dpone/connections.staging.yaml
	chmod 600 .dpone/connections.staging.yaml
	unset DPONE_CONN_MSSQL_DWH
	run dpone doctor --profile staging m.yaml
	assert_success
	assert_output_contains "ok    source     logged in"
}

@test "dpone schema physical-plan --apply: an existing topic is never changed; a missing one is created (where the cluster can)" {
	use_fault_stand_ins
	orders 3
	batch_manifest
	run dpone schema physical-plan --manifest m.yaml --apply
	assert_success
	assert_output_contains "topic $TOPIC exists with "
	assert_output_contains " partitions: nothing was changed"
	# The mock cluster has no CreateTopics: a missing topic is refused with
	# the cluster's answer, exit 5 (a real cluster creates it).
	control "$KAFKAD_CONTROL" "topic error $TOPIC UNKNOWN_TOPIC_OR_PART" > /dev/null
	run dpone schema physical-plan --manifest m.yaml --apply
	assert_failure 5
	assert_output_contains "topic $TOPIC could not be created:"
}

@test "batch run's last line: real elapsed time, its rate, and singular where there is one" {
	orders 1
	batch_manifest
	run dpone batch run m.yaml
	assert_success
	[[ "${lines[${#lines[@]} - 1]}" =~ committed:\ 1\ row,\ 1\ message\ in\ [0-9]+\.[0-9]\ s\ \([0-9]+(\.[0-9])?\ rows/s\)$ ]] ||
		flunk "last line: ${lines[${#lines[@]} - 1]}"
	refute_output_contains "in 0 s"
	run dpone batch run m.yaml
	assert_success
	[[ "${lines[${#lines[@]} - 1]}" =~ committed:\ 0\ rows,\ 0\ messages\ in\ [0-9]+\.[0-9]\ s$ ]] ||
		flunk "last line: ${lines[${#lines[@]} - 1]}"
}

@test "an idle tick (no rows, min_rows 1): exit 11 and one line; -q --idle-ok: exit 0, silent; runs list says idle" {
	orders 1
	batch_manifest "" 'quality:
  checks:
    - {type: min_rows, threshold: 1}'
	run dpone batch run m.yaml
	assert_success
	before=$(dpone-state -q m.yaml get)
	run dpone batch run m.yaml
	assert_failure 11
	# min_rows alone: dpone-produce decides it (no check stage), saying so once.
	assert_line "dpone-produce: nothing new (no rows; min_rows wants some): nothing was published (0 of 0 messages delivered)"
	refute_output_contains "the rows were published"
	refute_output_contains "consequence"
	refute_output_contains "min_rows check failed"
	run dpone batch run -q --idle-ok m.yaml
	assert_success
	assert_output ""
	[ "$(dpone-state -q m.yaml get)" = "$before" ] || flunk "state moved: $(dpone-state -q m.yaml get)"
	run dpone runs list m.yaml
	[ "$(awk 'NR > 1 {print $2, $3}' <<< "$output" | tr '\n' ,)" = "committed 0,idle 11,idle 0," ] || flunk "$output"
	# Rows again: a real run, then a check that fails on rows is exit 8, not idle.
	add_orders 2 2
	sed -i 's/threshold: 1}/threshold: 5}/' m.yaml
	run dpone batch run -q --idle-ok m.yaml
	assert_failure 8
	assert_output_contains "min_rows check failed: 1 row"
}

@test "a failed run names its cause once: the last line has the stage and its first error; the others are its consequences" {
	orders 3
	sql <<< "ALTER TABLE $T ALTER COLUMN customer nvarchar(40) NULL
UPDATE $T SET customer = NULL WHERE order_id = 2" > /dev/null
	batch_manifest "" 'quality:
  checks:
    - {type: not_null, columns: [customer]}
observability: {artifacts: {path: runs}}'
	run dpone batch run m.yaml
	assert_failure 8
	last=${lines[${#lines[@]} - 1]}
	[[ "$last" == "dpone: batch run failed: dpone-check exited 8 (quality): not_null check failed: "*"; state not advanced" ]] ||
		flunk "last line: $last"
	assert_line "dpone: batch run: dpone-produce exited 8 (quality), a consequence of dpone-check"
	run dpone runs list m.yaml
	[[ "${lines[1]}" == *" failed "*" 8 "*"dpone-check: not_null check failed: "* ]] || flunk "$output"
	run dpone runs show m.yaml latest
	assert_success
	assert_output_contains "error dpone-check: not_null check failed"
}

@test "a misspelled check column: doctor and batch run refuse it before anything is published (exit 2)" {
	orders 3
	batch_manifest "" 'quality:
  checks:
    - {type: not_null, columns: [custmer]}'
	run dpone doctor m.yaml
	assert_failure
	assert_output_contains "column 'custmer' is not in dbo.$T (did you mean 'customer'?)"
	run dpone batch run m.yaml
	assert_failure 2
	assert_output_contains "quality.checks[0].columns[0]: column 'custmer' is not in dbo.$T (did you mean 'customer'?)"
	[ "$(messages)" -eq 0 ] || flunk "$(messages) messages were published"
	[ -z "$(watermark)" ]
}

@test "progress: on a terminal one line drawn in place from the start; --progress: plain lines, moving while the server is silent; neither otherwise" {
	use_fault_stand_ins
	orders 3
	batch_manifest
	# A terminal (script(1) gives the run a pty).
	run script -qec "dpone batch run m.yaml" /dev/null
	assert_success
	[[ "$output" == *$'\r'"dpone-produce: 3 rows read, 3 delivered, "*": done"* ]] || flunk "$(cat -v <<< "$output")"
	# Not a terminal: no progress, the one-line summaries.
	add_orders 4 5
	run dpone batch run m.yaml
	assert_success
	refute_output_contains "rows read"
	assert_output_contains "dpone-produce: 2 rows, 2 messages delivered to"
	# --progress in a log: the line moves while the query is silent.
	add_orders 6 6
	control "$MSSQLD_CONTROL" "fault stall-after-rows 0 11000 ORDER BY" > /dev/null
	run dpone batch run --progress m.yaml
	assert_success
	[[ "$output" =~ "dpone-produce: 0 rows read, 0 delivered, 0 rows/s, 1"[0-9]"."[0-9]" s: waiting for the first row (dpone-extract: the server runs the query)" ]] ||
		flunk "$output"
	assert_output_contains "dpone-produce: 1 row read, 1 delivered, "
	assert_output_contains ": done"
	[[ "$output" != *$'\r'* ]] || flunk "a carriage return in a log"
}

# checks_of CMD: the checks message a pipeline writes, as compact JSON.
checks_of() {
	sh -c "$1" 2> /dev/null | grep '^\["checks"' | jq -c '.[1]'
}

@test "min_rows and max_rows alone: no dpone-check process; produce decides them with the same verdicts as dpone-check" {
	orders 3
	batch_manifest "" 'quality:
  checks:
    - {type: min_rows, threshold: 1}
    - {type: max_rows, threshold: 100}
observability: {artifacts: {path: runs}}'
	run dpone-plan --get run.check_stage m.yaml
	assert_output false
	run dpone batch run --dry-run m.yaml
	refute_output_contains "dpone-check"
	# The same checks message either way: pass, fail, warn.
	for t in 100 2; do
		sed -i "s/max_rows, threshold: [0-9]*}/max_rows, threshold: $t}/" m.yaml
		with=$(checks_of "dpone-extract -q m.yaml | dpone-check -q m.yaml | dpone-produce -q --dry-run m.yaml")
		without=$(checks_of "dpone-extract -q m.yaml | dpone-produce -q --dry-run m.yaml")
		[ -n "$with" ] && [ "$with" = "$without" ] || flunk "threshold $t: with dpone-check $with, without $without"
	done
	[ "$(jq -r .passed <<< "$without")" = false ]
	dpone-extract -q m.yaml | dpone-produce -q --dry-run m.yaml > /dev/null 2>&1 && flunk "a failed max_rows passed" || [ $? -eq 8 ]
	# A real run: no check stage, the verdict in state's history.
	sed -i "s/max_rows, threshold: [0-9]*}/max_rows, threshold: 100}/" m.yaml
	run dpone batch run m.yaml
	assert_success
	dir=$(ls -d runs/*/ | tail -n 1)
	[ ! -e "$dir/check.stderr" ] || flunk "a check stage ran"
	dpone-state -q m.yaml history | jq -e -s '.[0].checks.passed == true and ([.[0].checks.results[].type] == ["min_rows", "max_rows"])' > /dev/null ||
		flunk "$(dpone-state -q m.yaml history)"
	# Nothing new: idle, as with dpone-check.
	run dpone batch run m.yaml
	assert_failure 11
	assert_output_contains "nothing new"
	# A failed max_rows fails the run, state kept.
	add_orders 4 6
	sed -i "s/max_rows, threshold: [0-9]*}/max_rows, threshold: 2}/" m.yaml
	run dpone batch run m.yaml
	assert_failure 8
	assert_output_contains "batch run failed: dpone-produce exited 8 (quality): max_rows check failed: 3 rows, at most 2 wanted"
	[ "$(watermark)" = '"2026-11-26T08:00:03.1234567"' ] || flunk "state moved: $(watermark)"
	# A check that reads rows brings dpone-check back.
	printf '    - {type: not_null, columns: [customer]}\n' > extra.yaml
	sed -i '/max_rows, threshold/r extra.yaml' m.yaml
	run dpone-plan --get run.check_stage m.yaml
	assert_output true
}

@test "no check stage: schema evolution is decided by dpone-extract on the header, a breaking change before any row" {
	orders 2
	batch_manifest
	run dpone-plan --get run.check_stage m.yaml
	assert_output false
	run dpone batch run m.yaml
	assert_success
	# Narrowing a column is breaking: exit 8, nothing published, state kept.
	sql <<< "ALTER TABLE $T ALTER COLUMN customer nvarchar(20) NOT NULL" > /dev/null
	add_orders 3 3
	run dpone batch run m.yaml
	assert_failure 8
	assert_output_contains "dpone-extract: schema evolution: breaking change since run"
	[ "$(messages)" -eq 2 ] || flunk "$(messages) messages"
	[ "$(watermark)" = '"2026-11-26T08:00:02.1234567"' ]
}

@test "transient source failures: a deadlock victim or a lost connection is exit 12 and retried with the same boundary; a permanent one is not" {
	use_fault_stand_ins
	orders 10
	batch_manifest "" 'observability: {artifacts: {path: runs}}'
	sed -i 's/options: {incremental_column: updated_at}/options: {incremental_column: updated_at, retries: 2, retry_backoff: 1s}/' m.yaml
	# The extract alone: a deadlock victim (1205) is transient, exit 12.
	control "$MSSQLD_CONTROL" "fault error-after-rows 3 customer" > /dev/null
	run dpone-extract -q m.yaml
	assert_failure 12
	assert_output_contains "SQL Server error 1205"
	# A run: the first attempt fails, the retry delivers every row once
	# more at most, and commits; the artifacts show the attempt.
	control "$MSSQLD_CONTROL" "fault error-after-rows 3 customer" > /dev/null
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "batch run: attempt 1: dpone-extract exited 12 (transient): reading failed after"
	assert_output_contains "trying again in "
	[ "$(keys | tr '\n' ' ')" = "$(seq 1 10 | tr '\n' ' ')" ] || flunk "$(keys | tr '\n' ' ')"
	[ "$(watermark)" = '"2026-11-26T08:00:10.1234567"' ]
	dir=$(ls -d runs/*/ | tail -n 1)
	grep -q '^attempt 1 exit 12 error dpone-extract: ' "$dir/status" || flunk "$(cat "$dir/status")"
	[ -f "$dir/extract.stderr.attempt1" ] && grep -q "1205" "$dir/extract.stderr.attempt1"
	grep -q '^result committed$' "$dir/status"
	# The same boundary: rows that arrive between the attempts wait for the
	# next run (a lost connection this time).
	add_orders 11 12
	control "$MSSQLD_CONTROL" "fault drop-after-rows 1 customer" > /dev/null
	dpone batch run m.yaml > out.txt 2>&1 &
	pid=$!
	while ! grep -q "trying again" out.txt 2> /dev/null; do sleep 0.1; done
	add_orders 13 13
	wait "$pid" || flunk "$(cat out.txt)"
	[ "$(watermark)" = '"2026-11-26T08:00:12.1234567"' ] || flunk "the retry read past the first attempt's boundary: $(watermark): $(cat out.txt)"
	run dpone batch run m.yaml
	assert_success
	[ "$(watermark)" = '"2026-11-26T08:00:13.1234567"' ]
	# Retries run out: exit 12.
	control "$MSSQLD_CONTROL" "fault error-after-rows 0" > /dev/null
	add_orders 14 14
	sed -i 's/retries: 2/retries: 0/' m.yaml
	run dpone batch run m.yaml
	assert_failure 12
	assert_output_contains "batch run failed: dpone-extract exited 12 (transient)"
	# A permanent failure is not retried: the table is gone.
	sed -i 's/retries: 0/retries: 2/' m.yaml
	sql <<< "DROP TABLE $T" > /dev/null
	run dpone batch run m.yaml
	assert_failure
	refute_output_contains "trying again"
}
