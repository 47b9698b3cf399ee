#!/usr/bin/env bats
# source.options.boundary_safety: a transaction that writes a row below a
# run's high watermark and commits after the run read its boundary. Each
# test reproduces the race with a second session (python3-pymssql) holding
# a transaction open, and checks the topic: with the policy on, the row
# arrives with the next run; with it off, the same steps lose the row.

load test_helper
load stand_ins

stand_ins_per_file mssql kafka --faults mssql

setup() {
	common_setup
	load_env
	T="lc$BATS_TEST_NUMBER"
	TOPIC="late$BATS_TEST_NUMBER-$$"
}

# table: $T with rows 1 and 2, stamped by the server's clock (UTC) and a
# rowversion.
table() {
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, at datetime2(7) NOT NULL, rv rowversion)
INSERT INTO $T (id, at) VALUES (1, SYSUTCDATETIME())
INSERT INTO $T (id, at) VALUES (2, SYSUTCDATETIME())
SQL
}

# manifest COLUMN [OPTIONS]
manifest() {
	cat > m.yaml <<YAML
name: late_$T
source:
  type: mssql
  connection_id: mssql_dwh
  table: {name: $T}
  options: {incremental_column: $1${2:+, $2}}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: $TOPIC
  strategy: {mode: incremental_append, unique_key: [id]}
  options: {topic_config: {auto_create: true, partitions: 1}}
YAML
}

topic_ids() {
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -f '%k\n' | jq -r .id | sort -n | tr '\n' ' '
}

# race COLUMN [OPTIONS]: run 1 publishes rows 1 and 2; a session opens a
# transaction and writes row 3; a second session commits row 4 (stamped
# and versioned after row 3); run 2 reads its boundary; the transaction
# commits; run 3. The ids in the topic are left in ./ids.
race() {
	table
	manifest "$@"
	dpone batch run -q m.yaml || flunk "run 1 failed"
	open_transaction late "INSERT INTO $T (id, at) VALUES (3, SYSUTCDATETIME())"
	sleep 1.1 # a second, as a real writer's transaction would stay open
	sql <<< "INSERT INTO $T (id, at) VALUES (4, SYSUTCDATETIME())"
	dpone batch run m.yaml > run2.out 2>&1 || flunk "run 2 failed: $(cat run2.out)"
	commit_transaction late
	dpone batch run m.yaml > run3.out 2>&1 || flunk "run 3 failed: $(cat run3.out)"
	topic_ids > ids
}

@test "a datetime2 watermark, boundary_safety active_transactions (the default): the late row arrives with the next run" {
	race at
	[ "$(cat ids)" = "1 2 3 4 " ] || flunk "topic: $(cat ids); run 2: $(cat run2.out); run 3: $(cat run3.out)"
	grep -q "committed: 0 rows" run2.out || flunk "run 2 read past the open transaction: $(cat run2.out)"
	dpone-state -q m.yaml history | jq -e -s '.[1].boundary.safety.oldest_open_transaction != null' > /dev/null ||
		flunk "$(dpone-state -q m.yaml history)"
}

@test "a datetime2 watermark, boundary_safety none: the same steps lose the late row" {
	race at "boundary_safety: none"
	[ "$(cat ids)" = "1 2 4 " ] || flunk "topic: $(cat ids)"
}

@test "a rowversion watermark: MIN_ACTIVE_ROWVERSION() bounds the run; with none the row is lost" {
	race rv
	[ "$(cat ids)" = "1 2 3 4 " ] || flunk "topic: $(cat ids); run 2: $(cat run2.out)"
	dpone-state -q m.yaml history | jq -e -s '.[1].boundary.safety.min_active_rowversion != null' > /dev/null
	TOPIC="$TOPIC-none"
	race rv "boundary_safety: none"
	[ "$(cat ids)" = "1 2 4 " ] || flunk "topic with none: $(cat ids)"
}

@test "dpone plan shows the bound, each candidate and why while a transaction is open" {
	table
	manifest at
	open_transaction late "INSERT INTO $T (id, at) VALUES (3, SYSUTCDATETIME())"
	sql <<< "INSERT INTO $T (id, at) VALUES (4, SYSUTCDATETIME())"
	run dpone plan m.yaml --format md
	commit_transaction late
	assert_success
	assert_output_contains "late-commit safety (active_transactions): reads up to "
	assert_output_contains "; oldest open transaction began "
	assert_output_contains "; committed below "
	assert_output_contains "may still commit rows stamped after it began"
	dpone plan m.yaml --format json | jq -e '.boundary.safety.policy == "active_transactions" and .boundary.safety.max != null' > /dev/null
}

@test "without VIEW SERVER STATE: the run warns and goes on; doctor says so; the plan names the fallback" {
	use_fault_stand_ins
	table
	manifest at "lookback: 1m"
	control "$MSSQLD_CONTROL" "permission view-server-state off" > /dev/null
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "warning: source.options.boundary_safety: cannot see the database's open transactions"
	assert_output_contains "within source.options.lookback"
	dpone plan m.yaml --format json 2> plan.err > plan.json
	jq -e '.boundary.safety.fallback == "lookback" and .boundary.safety.applied == false' plan.json > /dev/null ||
		flunk "$(cat plan.json)"
	grep -q "cannot see the database's open transactions" plan.err || flunk "plan: $(cat plan.err)"
	run dpone doctor m.yaml
	assert_output_contains "late commits"
	assert_output_contains "GRANT VIEW SERVER STATE"
	control "$MSSQLD_CONTROL" "permission view-server-state on" > /dev/null
	run dpone doctor m.yaml
	assert_output_contains "the open transactions are visible"
}

@test "boundary_safety: lookback needs a lookback; an integer column is not bounded, and the plan says why" {
	table
	manifest at "boundary_safety: lookback"
	run dpone-extract --plan m.yaml
	assert_failure 2
	assert_output_contains "boundary_safety: lookback protects from late commits only with source.options.lookback set"
	manifest id
	run dpone-extract --plan m.yaml
	assert_success
	printf '%s\n' "$output" | jq -e '.boundary.safety.applied == false' > /dev/null
	assert_output_contains "is neither a rowversion nor stamped by a clock"
}
