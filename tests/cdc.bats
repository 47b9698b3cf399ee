#!/usr/bin/env bats
# Strategy cdc end to end: SQL Server change data capture (the stand-in's
# emulation, or a real server through DPONE_TEST_MSSQL_URL, whose capture
# job runs asynchronously: see cdc_sync) -> dpone batch run -> Kafka. The
# topic is checked from the consumer's side: replayed into a map by key
# (a tombstone deletes the key), it must equal the source table.

load test_helper
load stand_ins

stand_ins_per_file mssql kafka --faults mssql

setup() {
	common_setup
	load_env
	T="cdc$BATS_TEST_NUMBER"
	TOPIC="cdc$BATS_TEST_NUMBER-$$"
}

# cdc_sync: wait until the capture has seen every committed change. The
# stand-in captures synchronously; a real server's capture job polls every
# few seconds, so wait until the maximum LSN stops moving.
cdc_sync() {
	[ -n "${DPONE_TEST_MSSQL_URL:-}" ] || return 0
	last=
	while :; do
		sleep 6
		now=$(echo "SELECT sys.fn_cdc_get_max_lsn()" | sql)
		[ "$now" != "$last" ] || return 0
		last=$now
	done
}

# cdc_table: $T with three rows, captured.
cdc_table() {
	sql <<SQL
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, v nvarchar(20) NOT NULL, amount decimal(9,2) NOT NULL)
INSERT INTO $T VALUES (1, N'one', 1.00), (2, N'two', 2.00), (3, N'three', 3.00)
EXEC sys.sp_cdc_enable_db
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'$T', @role_name = NULL
SQL
	cdc_sync
}

# cdc_manifest [SOURCE-OPTIONS] [SINK-OPTIONS]
cdc_manifest() {
	cat > m.yaml <<YAML
name: cdc_$T
source:
  type: mssql
  connection_id: mssql_dwh
  table: {name: $T}
  options: {batch_size: 2${1:+, $1}}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: $TOPIC
  strategy: {mode: cdc}
  options: {topic_config: {auto_create: true, partitions: 3}, deletes: {enabled: true, tombstone: true}, dpone_headers: [run_id, change]${2:+, $2}}
state: {type: file, path: state.json}
YAML
}

# source_rows / topic_rows: id|v|amount, sorted; the topic replayed by key.
source_rows() {
	echo "SELECT id, v, amount FROM $T ORDER BY id" | sql
}

topic_rows() {
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -Z -f '%k\t%s\n' |
		jq -R -r -s 'split("\n") | map(select(length > 0) | split("\t"))
			| reduce .[] as [$k, $v] ({}; if $v == "NULL" then del(.[$k]) else .[$k] = ($v | fromjson) end)
			| .[] | "\(.id)|\(.v)|\(.amount)"' | sort -n
}

assert_topic_is_table() {
	local want got
	want=$(source_rows)
	got=$(topic_rows)
	[ "$want" = "$got" ] || flunk "topic replayed:" "$got" "source table:" "$want"
}

offset() {
	dpone-state -q m.yaml get --watermark
}

@test "cdc: a snapshot first, then inserts, updates and deletes over several runs; the topic replays to the table" {
	cdc_table
	cdc_manifest
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "committed: 3 rows, 3 messages"
	assert_topic_is_table
	[ "$(dpone-state -q m.yaml get | jq -r .record.boundary.snapshot)" = true ]
	first=$(offset)
	sql <<SQL
INSERT INTO $T VALUES (4, N'four', 4.00)
UPDATE $T SET amount = 22.50 WHERE id = 2
DELETE FROM $T WHERE id = 3
UPDATE $T SET v = N'uno' WHERE id = 1
SQL
	cdc_sync
	run dpone batch run m.yaml
	assert_success
	assert_topic_is_table
	[ "$(offset)" \> "$first" ]
	# Several operations on one key inside one run keep their order.
	sql <<SQL
INSERT INTO $T VALUES (5, N'five', 5.00)
UPDATE $T SET amount = 5.50 WHERE id = 5
DELETE FROM $T WHERE id = 5
INSERT INTO $T VALUES (5, N'again', 5.05)
DELETE FROM $T WHERE id = 1
SQL
	cdc_sync
	run dpone batch run m.yaml
	assert_success
	assert_topic_is_table
	# Nothing new: a run reads nothing and the offset stays.
	before=$(offset)
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "committed: 0 rows, 0 messages"
	[ "$(offset)" = "$before" ]
	assert_topic_is_table
}

@test "cdc: the stream carries change and delete messages; headers carry LSN, seqval and operation" {
	cdc_table
	cdc_manifest "" "envelope: debezium"
	dpone batch run m.yaml 2> /dev/null
	sql <<SQL
UPDATE $T SET amount = 9.99 WHERE id = 2
DELETE FROM $T WHERE id = 3
SQL
	cdc_sync
	run dpone-extract m.yaml --from "$(offset)"
	assert_success
	echo "$output" | jq -e -s 'map(select(type == "array") | .[0]) == ["header", "change", "delete", "end"]'
	echo "$output" | jq -e -s '.[1][1].op == "u" and (.[1][1].lsn | test("^0x[0-9A-F]{20}$")) and .[2] == {"amount": "9.99", "id": 2, "v": "two"} and .[3][1] == {"id": 3} and .[3][2].before.v == "three"'
	echo "$output" | tail -n 1 | jq -e '.[1].changes == {"insert": 0, "update": 1, "delete": 1} and .[1].rows == 1 and .[1].deletes == 1'
	run dpone batch run m.yaml
	assert_success
	run kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -Z -f '%h %s\n'
	assert_output_contains "dpone.op=u"
	assert_output_contains "dpone.op=d"
	assert_output_contains "dpone.seqval=0x"
	# The debezium envelope: op c/u/d, r for the snapshot rows.
	echo "$output" | grep -o '"op":"[rud]"' | sort | uniq -c | awk '{ print $2 }' | tr '\n' ' ' | grep -q '"op":"d" "op":"r" "op":"u"'
}

@test "cdc: row_filter_option 'all update old' carries the update's before image in the debezium envelope" {
	cdc_table
	cdc_manifest "row_filter_option: all update old" "envelope: debezium"
	dpone batch run m.yaml 2> /dev/null
	echo "UPDATE $T SET amount = 7.00 WHERE id = 1" | sql
	cdc_sync
	run dpone batch run m.yaml
	assert_success
	run kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -f '%s\n'
	echo "$output" | jq -e -s 'map(select(.op == "u")) | length == 1 and .[0].before.amount == "1.00" and .[0].after.amount == "7.00"'
}

@test "cdc: snapshot never reads the retained changes only; a --plan shows the window and commits nothing" {
	cdc_table
	cdc_manifest "snapshot: never"
	echo "INSERT INTO $T VALUES (4, N'four', 4.00)" | sql
	cdc_sync
	run dpone-extract m.yaml --plan
	assert_success
	echo "$output" | jq -e '.boundary.kind == "cdc" and .boundary.snapshot == false and .rows == 1 and (.sql | test("fn_cdc_get_all_changes_dbo_'"$T"'"))'
	[ ! -e state.json ]
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "committed: 1 row, 1 message in"
	[ "$(topic_rows)" = "4|four|4.00" ]
}

@test "cdc: a run cut in the middle of the changes advances nothing; the rerun delivers every change" {
	use_fault_stand_ins
	cdc_table
	cdc_manifest
	dpone batch run m.yaml 2> /dev/null
	before=$(offset)
	for i in $(seq 10 29); do echo "INSERT INTO $T VALUES ($i, N'v$i', $i.00)"; done | sql
	echo "UPDATE $T SET v = N'changed' WHERE id < 20" | sql
	echo "DELETE FROM $T WHERE id > 25" | sql
	cdc_sync
	# The connection drops after the first change row, in the middle of a page
	# (the stand-in matches the change table its function reads).
	control "$MSSQLD_CONTROL" "fault drop-after-rows 1 ${T}_CT" > /dev/null
	sed -i 's/options: {batch_size: 2}/options: {batch_size: 2, retries: 0}/' m.yaml
	run dpone batch run m.yaml
	assert_failure
	[ "$status" -eq 12 ] # transient: a retry in the run would pass (retries: 0 here)
	assert_output_contains "the stream has no end message"
	assert_output_contains "state not advanced"
	[ "$(offset)" = "$before" ]
	control "$MSSQLD_CONTROL" "fault clear" > /dev/null
	run dpone batch run m.yaml
	assert_success
	assert_topic_is_table
}

@test "cdc: an offset out of retention fails and says how to re-snapshot; when_needed re-snapshots" {
	cdc_table
	cdc_manifest
	dpone batch run m.yaml 2> /dev/null
	before=$(offset)
	echo "INSERT INTO $T VALUES (4, N'four', 4.00)" | sql
	echo "DELETE FROM $T WHERE id = 1" | sql
	echo "INSERT INTO $T VALUES (5, N'five', 5.00)" | sql
	cdc_sync
	# Cleanup moves the low water mark past the changes not yet read.
	sql <<SQL
DECLARE @lwm binary(10)
SET @lwm = sys.fn_cdc_get_max_lsn()
EXEC sys.sp_cdc_cleanup_change_table @capture_instance = N'dbo_$T', @low_water_mark = @lwm
SQL
	run dpone batch run m.yaml
	[ "$status" -eq 4 ]
	assert_output_contains "is out of capture instance dbo_$T's retention"
	assert_output_contains "Re-snapshot"
	[ "$(offset)" = "$before" ]
	run dpone doctor m.yaml
	assert_failure
	assert_output_contains "fail  cdc"
	cdc_manifest "snapshot: when_needed"
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "out of dbo_${T}'s retention"
	# The re-snapshot upserted every row; the delete of 1 was cleaned up
	# before it was read, so key 1 stays in the topic: the warning says why.
	[ "$(dpone-state -q m.yaml get | jq -r .record.boundary.snapshot_reason)" = "offset out of retention" ]
	topic_rows | grep -q '^4|four|4.00$'
	topic_rows | grep -q '^5|five|5.00$'
}

@test "cdc: a column added after the capture instance is reported; switching instances needs no gap" {
	cdc_table
	cdc_manifest
	dpone batch run m.yaml 2> /dev/null
	# A change only the first instance holds, then the new instance.
	sql <<SQL
INSERT INTO $T VALUES (4, N'four', 4.00)
ALTER TABLE $T ADD note nvarchar(20) NULL
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'$T', @role_name = NULL, @capture_instance = N'dbo_${T}_v2'
INSERT INTO $T VALUES (5, N'five', 5.00, N'n5')
SQL
	cdc_sync
	# Pinning the new instance before the offset reached its start is refused.
	cdc_manifest "capture_instance: dbo_${T}_v2"
	before=$(offset)
	run dpone batch run m.yaml
	[ "$status" -eq 4 ]
	assert_output_contains "the changes between are only in dbo_$T"
	[ "$(offset)" = "$before" ]
	# Unpinned, the run keeps reading the committed instance and says why.
	cdc_manifest
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "has a newer capture instance 'dbo_${T}_v2'"
	assert_output_contains "column note of dbo.$T is not captured by dbo_$T"
	assert_topic_is_table
	# Past the new instance's start, the switch loses nothing and the schema
	# change is recorded with the run.
	cdc_manifest "capture_instance: dbo_${T}_v2"
	echo "UPDATE $T SET note = N'x' WHERE id = 1" | sql
	cdc_sync
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "capture instance changed from 'dbo_$T' to 'dbo_${T}_v2'"
	assert_topic_is_table
	dpone-state -q m.yaml history | tail -n 1 | jq -e '.schema_changes[0].column == "note" and .schema_changes[0].change == "added"'
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -f '%s\n' | jq -e -s 'map(select(.id == 1)) | last | .note == "x"'
}

@test "cdc: doctor says when CDC is not enabled for the table, and what to run" {
	sql <<SQL
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, v nvarchar(20) NOT NULL, amount decimal(9,2) NOT NULL)
EXEC sys.sp_cdc_enable_db
SQL
	cdc_manifest
	run dpone doctor m.yaml
	assert_failure
	assert_output_contains "fail  cdc"
	assert_output_contains "change data capture is not enabled for dbo.$T"
	run dpone batch run m.yaml
	[ "$status" -eq 4 ]
	[ ! -e state.json ] || [ -z "$(offset)" ]
	echo "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'$T', @role_name = NULL" | sql
	run dpone doctor m.yaml
	assert_success
	assert_output_contains "ok    cdc        capture instance dbo_$T"
}

@test "cdc: quality checks see the changed rows; unique is refused, a key changes many times" {
	cdc_table
	cdc_manifest
	printf '%s\n' "quality: {checks: [{type: not_null, columns: [id, v]}, {type: min_rows, threshold: 0}]}" >> m.yaml
	dpone batch run m.yaml 2> /dev/null
	sql <<SQL
UPDATE $T SET amount = 1.10 WHERE id = 1
UPDATE $T SET amount = 1.20 WHERE id = 1
SQL
	cdc_sync
	run dpone batch run m.yaml
	assert_success
	dpone-state -q m.yaml get | jq -e '.record.checks.passed == true and .record.rows == 2'
	assert_topic_is_table
	printf '%s\n' "quality: {checks: [{type: unique}]}" > q.yaml
	sed -i '/^quality:/d' m.yaml
	cat q.yaml >> m.yaml
	run dpone-extract m.yaml
	[ "$status" -eq 2 ]
	assert_output_contains "unique does not apply to strategy cdc"
}

@test "cdc: the manifest must enable deletes; --from must be an LSN offset" {
	write_manifest
	sed -i 's/mode: full_refresh/mode: cdc/' m.yaml
	run dpone-extract m.yaml
	[ "$status" -eq 2 ]
	assert_output_contains "sink.options.deletes.enabled: strategy cdc publishes the source's deletes"
	cdc_table
	cdc_manifest
	run dpone-extract m.yaml --from 2026-01-01
	[ "$status" -eq 2 ]
	assert_output_contains "a CDC offset is 0xLSN:0xSEQVAL"
}
