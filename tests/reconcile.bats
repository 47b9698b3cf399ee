#!/usr/bin/env bats
# Strategy snapshot_reconciliation end to end: each run publishes the table
# and compares its keys with the key index committed with the state; keys
# gone from the source are reported, tombstoned or soft-deleted. Checked
# from the consumer's side (the topic replayed by key), in the state record
# and in the run's artifacts.

load test_helper
load stand_ins

stand_ins_per_file mssql kafka pg

setup() {
	common_setup
	load_env
	T="rc$BATS_TEST_NUMBER"
	TOPIC="rc$BATS_TEST_NUMBER-$$"
}

# items N: table $T with ids 1..N.
items() {
	sql <<SQL
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, v nvarchar(20) NOT NULL)
SQL
	seq 1 "$1" | awk -v t="$T" '{ printf "INSERT INTO %s VALUES (%d, N'"'"'v%d'"'"')\n", t, $1, $1 }' | sql
}

# recon_manifest STRATEGY-EXTRA [SINK-OPTIONS] [STATE-YAML]
recon_manifest() {
	local state=${3:-"state: {type: file, path: state/state.json}"}
	cat > m.yaml <<YAML
name: recon_$T
source:
  type: mssql
  connection_id: mssql_dwh
  table: {name: $T}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: $TOPIC
  strategy: {mode: snapshot_reconciliation, unique_key: [id]${1:+, $1}}
  options: {topic_config: {auto_create: true, partitions: 3}${2:+, $2}}
$state
observability: {artifacts: {enabled: true, path: runs}}
YAML
}

# The topic replayed by key (a tombstone removes the key): id|v|flag lines.
topic_rows() {
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -Z -f '%k\t%s\n' |
		jq -R -r -s 'split("\n") | map(select(length > 0) | split("\t"))
			| reduce .[] as [$k, $v] ({}; if $v == "NULL" then del(.[$k]) else .[$k] = ($v | fromjson) end)
			| .[] | "\(.id)|\(.v)|\(if has("gone") then .gone else "" end)"' | sort -n
}

tombstones() {
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -Z -f '%s\n' | grep -c '^NULL$' || true
}

index_keys() {
	dpone-state -q m.yaml keys | zstdcat | jq -c -s 'map(select(type == "object"))'
}

last_history() {
	dpone-state -q m.yaml history | tail -n 1
}

@test "reconcile: the first run builds the key index; report_only lists missing keys and keeps them indexed" {
	items 5
	recon_manifest
	run dpone batch run m.yaml
	assert_success
	[ "$(index_keys)" = '[{"id":1},{"id":2},{"id":3},{"id":4},{"id":5}]' ]
	echo "DELETE FROM $T WHERE id IN (2, 4)" | sql
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "2 of 5 published keys are no longer in the source; nothing was deleted"
	[ "$(tombstones)" -eq 0 ]
	last_history | jq -e '.reconciliation.mode == "report_only" and .reconciliation.missing == 2 and .reconciliation.deleted == 0'
	list=$(last_history | jq -r .reconciliation.missing_list)
	[ "$(cat "$list")" = '{"id":2}
{"id":4}' ]
	# Still in the topic, so still in the index: a later mode sees them.
	[ "$(index_keys | jq length)" -eq 5 ]
	run dpone batch run m.yaml
	assert_output_contains "2 of 5 published keys"
}

@test "reconcile: tombstone deletes exactly the missing keys; the topic replays to the table" {
	items 6
	recon_manifest "delete_mode: tombstone"
	dpone batch run m.yaml 2> /dev/null
	sql <<SQL
DELETE FROM $T WHERE id IN (1, 6)
INSERT INTO $T VALUES (7, N'v7')
SQL
	run dpone-extract m.yaml --missing-keys
	assert_success
	assert_output '{"id":1}
{"id":6}'
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "committed: 5 rows, 7 messages"
	[ "$(tombstones)" -eq 2 ]
	[ "$(topic_rows)" = "$(echo "SELECT id, v FROM $T ORDER BY id" | sql | sed 's/$/|/')" ]
	[ "$(index_keys)" = '[{"id":2},{"id":3},{"id":4},{"id":5},{"id":7}]' ]
	# The next run has nothing to delete.
	run dpone batch run m.yaml
	assert_success
	[ "$(tombstones)" -eq 2 ]
	last_history | jq -e '.reconciliation.missing == 0'
}

@test "reconcile: soft_delete publishes the key with the flag column set, rows with it false, no tombstone" {
	items 3
	recon_manifest "delete_mode: soft_delete, soft_delete_column: gone"
	dpone batch run m.yaml 2> /dev/null
	echo "DELETE FROM $T WHERE id = 2" | sql
	run dpone batch run m.yaml
	assert_success
	[ "$(tombstones)" -eq 0 ]
	assert_equal_rows() { [ "$(topic_rows)" = "$1" ] || flunk "topic:" "$(topic_rows)"; }
	assert_equal_rows "1|v1|false
2|null|true
3|v3|false"
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -f '%s\n' | grep -qx '{"id":2,"gone":true}'
}

@test "reconcile: max_delete_pct fails the run before any delete; plan and --missing-keys show what would go" {
	items 10
	recon_manifest "delete_mode: tombstone, max_delete_pct: 20"
	dpone batch run m.yaml 2> /dev/null
	before=$(dpone-state -q m.yaml get | jq -c .record)
	echo "DELETE FROM $T WHERE id > 7" | sql
	run dpone plan m.yaml --format md
	assert_success
	assert_output_contains "keys no longer in the source: 3"
	assert_output_contains "guard: fail"
	assert_output_contains '`{"id":8}`'
	assert_output_contains "all of them: \`dpone-extract m.yaml --missing-keys\`"
	run dpone-extract m.yaml --chunk 1/2
	[ "$status" -eq 2 ]
	assert_output_contains "--chunk does not apply to strategy snapshot_reconciliation"
	dpone plan m.yaml --format json | jq -e '.reconciliation.missing == 3 and .reconciliation.guard == "fail" and (.reconciliation.missing_sample | length) == 3'
	run dpone batch run m.yaml
	[ "$status" -eq 8 ]
	assert_output_contains "would delete 3 of 10 keys (30.000%), more than sink.strategy.max_delete_pct (20%)"
	assert_output_contains "state not advanced"
	[ "$(tombstones)" -eq 0 ]
	[ "$(dpone-state -q m.yaml get | jq -c .record)" = "$before" ]
	# Under the guard, the deletes go through.
	echo "INSERT INTO $T VALUES (8, N'v8'), (9, N'v9')" | sql
	run dpone batch run m.yaml
	assert_success
	[ "$(tombstones)" -eq 1 ]
}

@test "reconcile: plan changes nothing, not the state nor the stored index" {
	items 4
	recon_manifest "delete_mode: tombstone"
	dpone batch run m.yaml 2> /dev/null
	echo "DELETE FROM $T WHERE id = 1" | sql
	sum_before=$(cat state/state.json state/state.json.keys/* | sha256sum)
	run dpone plan m.yaml
	assert_success
	assert_output_contains "keys no longer in the source: 1"
	assert_output_contains "on Kafka this strategy is not recommended"
	[ "$(cat state/state.json state/state.json.keys/* | sha256sum)" = "$sum_before" ]
	[ "$(tombstones)" -eq 0 ]
}

@test "reconcile: a key index that does not match its record stops the run; keys --clear starts over" {
	items 3
	recon_manifest "delete_mode: tombstone"
	dpone batch run m.yaml 2> /dev/null
	index=$(ls state/state.json.keys/*)
	# An index of fewer keys than the record says (a copy of another job's, say).
	printf '["header",{"protocol":1,"kind":"key_index","columns":[{"name":"id","sql_type":"int","logical_type":"integer","nullable":false}],"key":["id"]}]\n{"id":1}\n["end",{"rows":1}]\n' | zstd -q > "$index"
	run dpone batch run m.yaml
	[ "$status" -eq 6 ]
	assert_output_contains "the committed key index holds 1 keys, its state record says 3"
	[ "$(tombstones)" -eq 0 ]
	run dpone-state m.yaml keys --clear
	assert_success
	[ -z "$(ls state/state.json.keys/)" ]
	last_history | jq -e '.kind == "keys_clear"'
	run dpone batch run m.yaml
	assert_success
	[ "$(index_keys | jq length)" -eq 3 ]
}

@test "reconcile: composite keys with quotes and unicode; exactly_once puts rows and deletes in one transaction" {
	sql <<SQL
CREATE TABLE $T (region nvarchar(10) NOT NULL, code nvarchar(20) NOT NULL, v int NOT NULL, PRIMARY KEY (region, code))
INSERT INTO $T VALUES (N'eu', N'a"b', 1), (N'eu', N'ü\\x', 2), (N'us', N'a"b', 3)
SQL
	cat > m.yaml <<YAML
name: recon_$T
source: {type: mssql, connection_id: mssql_dwh, table: {name: $T}}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: $TOPIC
  strategy: {mode: snapshot_reconciliation, unique_key: [region, code], delete_mode: tombstone}
  options: {topic_config: {auto_create: true, partitions: 3}, delivery: {mode: exactly_once}}
state: {type: file, path: state/state.json}
YAML
	run dpone batch run m.yaml
	assert_success
	echo "DELETE FROM $T WHERE region = N'eu' AND code = N'a\"b'" | sql
	run dpone-extract m.yaml --missing-keys
	assert_output '{"region":"eu","code":"a\"b"}'
	run dpone batch run m.yaml
	assert_success
	[ "$(tombstones)" -eq 1 ]
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -Z -f '%k %s\n' -X isolation.level=read_committed |
		grep -qxF '{"region":"eu","code":"a\"b"} NULL'
}

@test "reconcile: 100k keys in 1 MiB of memory spill to sorted runs and still delete exactly the missing keys" {
	echo "CREATE TABLE $T (id int NOT NULL PRIMARY KEY, v nvarchar(20) NOT NULL)" | sql
	seq 1 100000 | awk '{ printf "%d\tv%d\n", $1, $1 }' > rows.tsv
	freebcp "dbo.$T" in rows.tsv -c -S mssql -U "$DPONE_TEST_MSSQL_USER" -P "$DPONE_TEST_MSSQL_PASSWORD" -D "$DPONE_TEST_MSSQL_DATABASE" > /dev/null
	recon_manifest "delete_mode: tombstone, reconcile_memory_mb: 1"
	run dpone batch run m.yaml
	assert_success
	[ "$(index_keys | jq length)" -eq 100000 ]
	echo "DELETE FROM $T WHERE id % 1000 = 7" | sql
	run dpone-extract m.yaml --missing-keys
	[ "$(echo "$output" | wc -l)" -eq 100 ]
	[ "$(echo "$output" | jq -s 'map(.id % 1000 == 7) | all')" = true ]
	run dpone batch run m.yaml
	assert_success
	[ "$(tombstones)" -eq 100 ]
	[ "$(index_keys | jq 'length')" -eq 99900 ]
	# The index is in key order, once each key.
	dpone-state -q m.yaml keys | zstdcat | grep '^{' | LC_ALL=C sort -c
	[ "$(dpone-state -q m.yaml keys | zstdcat | grep '^{' | sort -u | wc -l)" -eq 99900 ]
}

@test "reconcile: with PostgreSQL state the index is stored in the database, and the old one removed" {
	export DPONE_CONN_POSTGRES_STATE="$DPONE_TEST_PG_URL"
	items 4
	recon_manifest "delete_mode: tombstone" "" "state: {type: postgres, connection_id: postgres_state, table: {schema: rc_$T, name: dpone_state}}"
	run dpone batch run m.yaml
	assert_success
	echo "DELETE FROM $T WHERE id = 3" | sql
	run dpone batch run m.yaml
	assert_success
	[ "$(tombstones)" -eq 1 ]
	[ "$(index_keys)" = '[{"id":1},{"id":2},{"id":4}]' ]
	[ "$(psql -X -q -t -A "$DPONE_TEST_PG_URL" -c "SELECT count(DISTINCT name) FROM rc_$T.dpone_state_keys")" -eq 1 ]
}
