#!/usr/bin/env bats
# Scale-out: source.options.parallelism (N ranges read at once inside one
# run) and dpone batch run --chunk I/N (one run spread over N processes,
# one state commit). Every test checks the exact union: each key of the
# table once, none missing, none twice.

load test_helper
load stand_ins

stand_ins_per_file mssql kafka pg --faults mssql

setup() {
	common_setup
	load_env
	T="p$BATS_TEST_NUMBER"
	TOPIC="par$BATS_TEST_NUMBER-$$"
}

# table_with IDS...: table $T, a row per id (bigint key), updated_at
# following the id, so that an incremental run reads them in id order.
table_with() {
	{
		echo "DROP TABLE IF EXISTS $T"
		echo "CREATE TABLE $T (id bigint NOT NULL PRIMARY KEY, v nvarchar(20), updated_at datetime2(7) NOT NULL)"
		for id in "$@"; do
			s=$(( (id % 86400 + 86400) % 86400 ))
			printf "INSERT INTO %s VALUES (%s, N'v%s', '2026-12-01T%02d:%02d:%02d')\n" "$T" "$id" "$id" $((s / 3600)) $((s / 60 % 60)) $((s % 60))
		done
	} | sql
}

# range_rows FIRST LAST: table $T with ids FIRST..LAST (one INSERT per 500).
range_rows() {
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (id bigint NOT NULL PRIMARY KEY, v nvarchar(20), updated_at datetime2(7) NOT NULL)
SQL
	seq "$1" "$2" | awk -v t="$T" '
		{ row = sprintf("(%d, N'"'"'v%d'"'"', '"'"'2026-12-01T%02d:%02d:%02d'"'"')", $1, $1, int($1 / 3600) % 24, int($1 / 60) % 60, $1 % 60) }
		NR % 500 == 1 { if (NR > 1) print ""; printf "INSERT INTO %s VALUES %s", t, row; next }
		{ printf ", %s", row }
		END { print "" }' | sql
}

# manifest STRATEGY [SOURCE-OPTIONS] [STATE-YAML]
manifest() {
	cat > m.yaml <<YAML
name: par_$T
source:
  type: mssql
  connection_id: mssql_dwh
  table: {name: $T}
  options: {${2:-}}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: $TOPIC
  strategy: {mode: $1, unique_key: [${KEY:-id}]}
  options: {topic_config: {auto_create: true, partitions: 3}}
${3:-}
YAML
}

ids() {
	grep -o '"id":-\?[0-9]*' | cut -d: -f2 | sort -n
}

# the table's ids, sorted
table_ids() {
	sql <<< "SELECT id FROM $T" | sort -n
}

# topic_ids: every id published, sorted (duplicates kept)
topic_ids() {
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -f '%k\n' | jq -r .id | sort -n
}

@test "parallelism N: the union of the ranges is the table, each row once, for N = 1..8 and N > rows" {
	table_with 1 2 3 1000000 1000001 -5 9000000000
	manifest full_refresh
	table_ids > want
	for n in 1 2 3 4 8 20; do
		dpone-extract --parallel "$n" m.yaml > out.ndjson || flunk "--parallel $n failed"
		tail -n 1 out.ndjson | grep -q '^\["end",{"rows":7' || flunk "--parallel $n: end is $(tail -n 1 out.ndjson)"
		ids < out.ndjson > got
		cmp want got || flunk "--parallel $n: $(tr '\n' ' ' < got)"
		[ "$(head -n 1 out.ndjson | jq -c '.[1].boundary.split.ranges // 1')" = "$n" ] || flunk "no split of $n in the header"
	done
}

@test "parallelism: rows of each strategy that reads a boundary, stream and bcp, exactly once" {
	range_rows 1 2000
	table_ids > want
	for mode in stream bcp; do
		for strategy in full_refresh incremental_append incremental_merge replace; do
			opts="export_mode: $mode, parallelism: 4"
			case $strategy in incremental_*) opts="$opts, incremental_column: updated_at" ;; esac
			manifest "$strategy" "$opts"
			dpone-extract m.yaml > out.ndjson || flunk "$strategy/$mode failed"
			ids < out.ndjson > got
			cmp want got || flunk "$strategy/$mode: $(wc -l < got) ids, want $(wc -l < want)"
			dpone-extract --parallel 1 m.yaml | ids > one
			cmp one got || flunk "$strategy/$mode: differs from one range"
		done
	done
	# Each range keeps its order: ids ascend within the rows of a range.
	manifest incremental_append "parallelism: 4, incremental_column: updated_at"
	dpone-extract m.yaml | jq -c 'select(type == "object") | .id' > order
	# every id's range (4 equal widths of 1..2000) and its position: ascending per range
	awk '{ r = int(($1 - 1) / 500); if ($1 <= last[r]) { print "out of order: " $1; exit 1 } last[r] = $1 }' order
}

@test "parallelism: the end's watermark is the highest of any range, its rows the sum" {
	range_rows 1 300
	manifest incremental_append "parallelism: 3, incremental_column: updated_at"
	dpone-extract m.yaml > par.ndjson
	dpone-extract --parallel 1 m.yaml > one.ndjson
	[ "$(tail -n 1 par.ndjson | jq -c '.[1] | [.rows, .watermark]')" = "$(tail -n 1 one.ndjson | jq -c '.[1] | [.rows, .watermark]')" ] ||
		flunk "$(tail -n 1 par.ndjson) vs $(tail -n 1 one.ndjson)"
	dpone-extract --from 2026-12-01T00:04:00 m.yaml | ids > got
	[ "$(wc -l < got)" = 60 ] || flunk "from 00:04: $(wc -l < got) rows"
}

@test "parallelism: skewed keys (most rows in one range) and empty ranges are still exact" {
	table_with 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 1000000000
	manifest full_refresh "parallelism: 4"
	dpone-extract --plan m.yaml > plan.json
	jq -c '[.ranges[].rows]' plan.json > counts
	[ "$(cat counts)" = "[20,0,0,1]" ] || flunk "range counts $(cat counts)"
	jq -r '.ranges[0].sql' plan.json | grep -q 'WHERE .*\[id\] >= 1 AND \[id\] < ' || flunk "$(jq -r '.ranges[0].sql' plan.json)"
	table_ids > want
	dpone-extract m.yaml | ids > got
	cmp want got
}

@test "parallelism: an empty table, and a boundary with nothing in it" {
	table_with
	manifest incremental_append "parallelism: 4, incremental_column: updated_at"
	run dpone-extract m.yaml
	assert_success
	assert_output_contains '["end",{"rows":0'
	table_with 5
	sql <<< "DELETE FROM $T"
	run dpone-extract --from 2026-12-01T00:00:00 m.yaml
	assert_success
	assert_output_contains '["end",{"rows":0'
}

@test "parallelism: a range that fails stops the others; no end message, its exit status, a rerun is whole" {
	use_fault_stand_ins
	range_rows 1 2000
	manifest full_refresh "parallelism: 4"
	# the first range query to reach 100 rows loses its connection (the
	# planning queries read only id)
	control "$MSSQLD_CONTROL" "fault drop-after-rows 100 updated_at" > /dev/null
	run dpone-extract m.yaml
	[ "$status" -eq 12 ] || flunk "exit $status: $output"
	refute_output_contains '["end",'
	assert_output_contains "/4 exited 12; the stream has no end message"
	run dpone-extract m.yaml
	assert_success
	printf '%s\n' "$output" | ids > got
	table_ids > want
	cmp want got
}

@test "parallelism: an integer split column is required; split_column names another; cdc and reconciliation refuse it" {
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (code nvarchar(10) NOT NULL PRIMARY KEY, n int)
INSERT INTO $T VALUES (N'a', 1), (N'b', 2), (N'c', NULL)
SQL
	KEY=code
	manifest full_refresh "parallelism: 2"
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "source.options.parallelism needs an integer column to split on"
	manifest full_refresh "parallelism: 2, split_column: code"
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "split_column: column 'code' is not an integer column"
	manifest full_refresh "parallelism: 2, split_column: n"
	run dpone-extract m.yaml
	assert_success
	[ "$(printf '%s\n' "$output" | grep -c '^{"code"')" = 3 ] || flunk "$output"
	sed -i 's/mode: full_refresh/mode: snapshot_reconciliation/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "source.options.parallelism"
	assert_output_contains "does not apply to strategy snapshot_reconciliation"
}

# --- whole runs with parallelism, and chunks ---

# commits: how many commits the job's history has
commits() {
	dpone-state -q m.yaml history | jq -s '[.[] | select(.kind == "commit")] | length'
}

@test "batch run --parallel 4: every key once in the topic, one commit, the next run reads only what is new" {
	range_rows 1 1000
	manifest incremental_append "incremental_column: updated_at"
	run dpone batch run m.yaml --parallel 4
	assert_success
	assert_output_contains "committed: 1000 rows, 1000 messages"
	table_ids > want
	topic_ids > got
	cmp want got || flunk "topic: $(wc -l < got) ids"
	[ "$(commits)" = 1 ] || flunk "$(dpone-state -q m.yaml history)"
	[ "$(dpone-state -q m.yaml get --watermark)" = '"2026-12-01T00:16:40.0000000"' ] || flunk "$(dpone-state -q m.yaml get --watermark)"
	sql <<< "INSERT INTO $T VALUES (5000, N'new', '2026-12-02T00:00:00')"
	run dpone batch run m.yaml --parallel 4
	assert_success
	assert_output_contains "committed: 1 row, 1 message"
}

@test "batch run with parallelism and exactly_once: one transaction, read_committed sees every key once" {
	range_rows 1 600
	manifest full_refresh "parallelism: 3"
	sed -i 's/options: {topic_config/options: {delivery: {mode: exactly_once}, topic_config/' m.yaml
	run dpone batch run m.yaml
	assert_success
	table_ids > want
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -X isolation.level=read_committed -f '%k\n' | jq -r .id | sort -n > got
	cmp want got
}

# run_chunks N [I...]: dpone batch run --chunk I/N for each I (all of 1..N
# when none is named), at once, as N schedulers' tasks would; their
# statuses in chunk.I.rc and output in chunk.I.out.
run_chunks() {
	local n=$1 i pids=''
	shift
	[ $# -gt 0 ] || set -- $(seq 1 "$n")
	for i in "$@"; do
		dpone batch run m.yaml --chunk "$i/$n" > "chunk.$i.out" 2>&1 &
		pids="$pids $!:$i"
	done
	for p in $pids; do
		wait "${p%%:*}"
		echo $? > "chunk.${p#*:}.rc"
	done
}

chunk_test() {
	range_rows 1 900
	manifest incremental_append "incremental_column: updated_at" "$1"
	run_chunks 3
	for i in 1 2 3; do
		[ "$(cat chunk.$i.rc)" = 0 ] || flunk "chunk $i: $(cat chunk.$i.out)"
	done
	table_ids > want
	topic_ids > got
	cmp want got || flunk "topic: $(wc -l < got) ids of $(wc -l < want)"
	[ "$(commits)" = 1 ] || flunk "$(dpone-state -q m.yaml history)"
	dpone-state -q m.yaml history | jq -e 'select(.kind == "commit") | .rows == 900 and (.chunks | length) == 3' > /dev/null ||
		flunk "$(dpone-state -q m.yaml history)"
	[ "$(dpone-state -q m.yaml get --watermark)" = '"2026-12-01T00:15:00.0000000"' ] || flunk "$(dpone-state -q m.yaml get --watermark)"
	grep -l "committed run" chunk.*.out | wc -l | grep -qx 1 || flunk "not exactly one chunk committed: $(cat chunk.*.out)"
	# The next scheduled set: one new row, read by the chunk whose range it is in.
	sql <<< "INSERT INTO $T VALUES (901, N'new', '2026-12-01T01:00:00')"
	run_chunks 3
	for i in 1 2 3; do
		[ "$(cat chunk.$i.rc)" = 0 ] || flunk "second set, chunk $i: $(cat chunk.$i.out)"
	done
	[ "$(topic_ids | wc -l)" = 901 ] || flunk "after the second set: $(topic_ids | wc -l) messages"
	[ "$(commits)" = 2 ]
}

@test "batch run --chunk I/N: N processes at once, file state: every key once, the state moves once, by one chunk" {
	chunk_test ""
}

@test "batch run --chunk I/N: N processes at once, PostgreSQL state" {
	chunk_test "state: {type: postgres, connection_id: postgres_state, table: {schema: chunks_$T}}"
}

@test "a chunk that fails fails alone: no state move; rerun alone, it completes the run" {
	use_fault_stand_ins
	range_rows 1 900
	manifest incremental_append "incremental_column: updated_at, retries: 0"
	run_chunks 3 1 3
	[ "$(cat chunk.1.rc)$(cat chunk.3.rc)" = 00 ] || flunk "$(cat chunk.*.out)"
	grep -q "1 of 3 chunks in\|2 of 3 chunks in" chunk.3.out || flunk "$(cat chunk.3.out)"
	[ -z "$(dpone-state -q m.yaml get --watermark)" ] || flunk "state moved before every chunk was in"
	# chunk 2 loses its connection mid-stream
	control "$MSSQLD_CONTROL" "fault drop-after-rows 50 updated_at" > /dev/null
	run dpone batch run m.yaml --chunk 2/3
	assert_failure 12
	[ -z "$(dpone-state -q m.yaml get --watermark)" ] || flunk "state moved after a failed chunk"
	# a whole run may not start meanwhile; the plan says why
	run dpone batch run m.yaml
	assert_failure 7
	assert_output_contains "(2 of 3 chunks delivered) is open"
	run dpone plan m.yaml --format md
	assert_output_contains ", 2 of 3 chunks delivered ([1,3]); a whole run is refused"
	run dpone batch run m.yaml --chunk 2/3
	assert_success
	assert_output_contains "committed run"
	table_ids > want
	topic_ids | uniq > got
	cmp want got
	[ "$(commits)" = 1 ]
	[ "$(dpone-state -q m.yaml get --watermark)" = '"2026-12-01T00:15:00.0000000"' ]
}

@test "chunks: a delivered chunk is not run again; another N, a stale chunk and a summary of another chunk are refused" {
	range_rows 1 300
	manifest full_refresh "" 
	run dpone batch run m.yaml --chunk 1/2
	assert_success
	run dpone batch run m.yaml --chunk 1/2
	assert_success
	assert_output_contains "delivered already"
	run dpone batch run m.yaml --chunk 1/3
	assert_failure 7
	assert_output_contains "of 2 chunks, not 3"
	# chunk 2's summary, kept, is stale once the run is complete
	dpone-state -q m.yaml get | jq -r '.record.chunked_run.boundary' > boundary.json
	dpone-extract -q m.yaml --chunk 2/2 --boundary-file boundary.json | dpone-produce -q m.yaml > chunk2.summary
	run dpone-state m.yaml chunk-receipt --chunk 1/2 < chunk2.summary
	assert_failure 3
	assert_output_contains "not of chunk 1/2"
	run dpone-state m.yaml chunk-receipt --chunk 2/2 < chunk2.summary
	assert_success
	assert_output_contains "committed run"
	run dpone-state m.yaml chunk-receipt --chunk 2/2 < chunk2.summary
	assert_failure 7
	assert_output_contains "is stale: that run is complete and committed already"
	[ "$(commits)" = 1 ]
}

@test "chunks racing to complete the set: exactly one commit" {
	range_rows 1 600
	manifest full_refresh ""
	dpone batch run m.yaml --chunk 1/3 > /dev/null 2>&1
	run_chunks 3 2 3
	[ "$(cat chunk.2.rc)$(cat chunk.3.rc)" = 00 ] || flunk "$(cat chunk.*.out)"
	[ "$(commits)" = 1 ] || flunk "$(dpone-state -q m.yaml history)"
	[ "$(topic_ids | wc -l)" = 600 ]
}

@test "dpone plan shows each range's SQL and count; batch run --dry-run shows the chunk's commands" {
	range_rows 1 100
	manifest full_refresh "parallelism: 2"
	run dpone plan m.yaml --format md
	assert_success
	assert_output_contains "Read in 2 ranges at once"
	assert_output_contains "| 1 | 50 | \`SELECT"
	run dpone batch run m.yaml --chunk 2/4 --dry-run
	assert_success
	assert_output_contains "chunk-plan --chunk 2/4"
	assert_output_contains "chunk-receipt --chunk 2/4"
	run dpone batch run m.yaml --chunk 5/4
	assert_failure 2
	run dpone batch run m.yaml --chunk 1/2 --parallel 2
	assert_failure 2
}

@test "examples/kubernetes: the Indexed Job's command as N local processes, one killed mid-stream and rerun: every key, one commit" {
	use_fault_stand_ins
	range_rows 1 2000
	python3 - "$SRCDIR/examples/kubernetes" > job.txt <<'PY'
import sys, yaml
d = sys.argv[1]
job = yaml.safe_load(open(d + "/orders-job.yaml"))
cm = yaml.safe_load(open(d + "/configmap.yaml"))
spec = job["spec"]
assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"], "not an Indexed Job of N"
container = spec["template"]["spec"]["containers"][0]
names = {e["name"] for e in container["env"]}
assert {"DPONE_CONN_MSSQL_DWH", "DPONE_CONN_KAFKA_CLUSTER", "DPONE_CONN_POSTGRES_STATE"} <= names
print(spec["completions"])
print(container["command"][2])
open("orders.yaml", "w").write(cm["data"]["orders.yaml"])
PY
	n=$(sed -n 1p job.txt)
	cmd=$(sed -n 2p job.txt | sed "s|/etc/dpone/orders.yaml|$PWD/orders.yaml|")
	[ "$n" = 4 ] && grep -q -- '--chunk "$((JOB_COMPLETION_INDEX + 1))/4"' job.txt || flunk "$(cat job.txt)"
	# the ConfigMap's manifest, on this test's table, topic and state schema
	sed -i "s/^name: orders/name: k8s_$T/; s/name: orders}/name: $T}/; s/topic: orders/topic: $TOPIC/; s/\[order_id\]/[id]/; s/connection_id: postgres_state/connection_id: postgres_state\n  table: {schema: k8s_$T}/" orders.yaml
	grep -q "table: {schema: k8s_$T}" orders.yaml || flunk "$(cat orders.yaml)"
	# one range stalls mid-stream, as a pod on a lost node would
	control "$MSSQLD_CONTROL" "fault stall-after-rows 100 20000 updated_at" > /dev/null
	pids=''
	for i in $(seq 0 $((n - 1))); do
		JOB_COMPLETION_INDEX=$i setsid sh -c "$cmd" > "pod.$i.out" 2>&1 &
		pids="$pids $!"
	done
	# wait for all but the stalled one
	for _ in $(seq 1 100); do
		alive=0
		for p in $pids; do kill -0 "$p" 2> /dev/null && alive=$((alive + 1)); done
		[ "$alive" -gt 1 ] || break
		sleep 0.2
	done
	[ "$alive" = 1 ] || flunk "$alive pods still running: $(cat pod.*.out)"
	i=0
	for p in $pids; do
		if kill -0 "$p" 2> /dev/null; then killed=$i; kill -KILL -- "-$p"; fi
		i=$((i + 1))
	done
	wait
	[ -z "$(dpone-state -q orders.yaml get --watermark)" ] || flunk "state moved with a pod killed"
	JOB_COMPLETION_INDEX=$killed sh -c "$cmd" > rerun.out 2>&1 || flunk "rerun of pod $killed: $(cat rerun.out)"
	table_ids > want
	topic_ids | uniq > got
	cmp want got || flunk "topic: $(wc -l < got) keys of $(wc -l < want)"
	[ "$(dpone-state -q orders.yaml history | jq -s '[.[] | select(.kind == "commit")] | length')" = 1 ]
	[ "$(dpone-state -q orders.yaml get --watermark)" = '"2026-12-01T00:33:20.0000000"' ] || flunk "$(dpone-state -q orders.yaml get --watermark)"
}

@test "batch run --parallel: a range that fails fails the run (no state move, retried with the same ranges); the rerun delivers" {
	use_fault_stand_ins
	range_rows 1 1200
	manifest incremental_append "incremental_column: updated_at, parallelism: 3, retries: 0"
	control "$MSSQLD_CONTROL" "fault drop-after-rows 100 updated_at" > /dev/null
	run dpone batch run m.yaml
	assert_failure 12
	assert_output_contains "/3 exited 12"
	[ -z "$(dpone-state -q m.yaml get --watermark)" ] || flunk "state moved"
	# retried: the second attempt reads the first's boundary and ranges
	sed -i 's/retries: 0/retries: 1, retry_backoff: 1s/' m.yaml
	control "$MSSQLD_CONTROL" "fault drop-after-rows 100 updated_at" > /dev/null
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "attempt 1: dpone-extract exited 12"
	table_ids > want
	topic_ids | uniq > got
	cmp want got
	[ "$(commits)" = 1 ]
}

@test "chunks: a reset abandons the open chunked run; a chunk of it is stale against the new plan" {
	range_rows 1 300
	manifest full_refresh ""
	run dpone batch run m.yaml --chunk 1/2
	assert_success
	dpone-state -q m.yaml get | jq -r '.record.chunked_run.boundary' > old.json
	dpone-extract -q m.yaml --chunk 2/2 --boundary-file old.json | dpone-produce -q m.yaml > old2.summary
	run dpone-state m.yaml reset --to null
	assert_success
	run dpone-state m.yaml chunk-receipt --chunk 2/2 < old2.summary
	assert_failure 7
	assert_output_contains "no chunked run is open (abandoned by a reset)"
	run dpone batch run m.yaml --chunk 1/2
	assert_success
	run dpone-state m.yaml chunk-receipt --chunk 2/2 < old2.summary
	assert_failure 7
	assert_output_contains "the open chunked run is "
	run dpone batch run m.yaml --chunk 2/2
	assert_success
	[ "$(commits)" = 1 ]
}
