#!/usr/bin/env bats
# dpone-plan: options, manifest handling and exit codes.

load test_helper
load stand_ins

stand_ins_per_file mssql

# orders_job [DELIVERY] [STRATEGY-MODE]: table $T with 5 orders and an
# incremental job on it, state in a file, three checks.
orders_job() {
	load_env
	export DPONE_CONN_KAFKA_CLUSTER=kafka://127.0.0.1:9
	T="p$BATS_TEST_NUMBER"
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (order_id int NOT NULL PRIMARY KEY, customer nvarchar(40) NOT NULL, updated_at datetime2(7) NOT NULL)
INSERT INTO $T VALUES (1, N'a', '2026-11-26 08:00:01.1234567'), (2, N'b', '2026-11-26 08:00:02.1234567'),
  (3, N'c', '2026-11-26 08:00:03.1234567'), (4, N'd', '2026-11-26 08:00:04.1234567'), (5, N'e', '2026-11-26 08:00:05.1234567')
SQL
	cat > m.yaml <<YAML
name: plan_$T
source:
  type: mssql
  connection_id: mssql_dwh
  table: {name: $T}
  options: {incremental_column: updated_at, batch_size: 1000}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: dwh.$T
  strategy: {mode: ${2:-incremental_merge}, unique_key: [order_id]}
  options: {delivery: {mode: ${1:-at_least_once}}}
state: {type: file, path: state/plan.json}
quality:
  checks:
    - {type: min_rows, threshold: 1}
    - {type: not_null, columns: [customer]}
    - {type: hash_reconciliation}
observability:
  artifacts: {path: runs}
YAML
}

@test "dpone-plan --help prints the usage on stdout and exits 0" {
	run dpone-plan --help
	assert_success
	assert_output_contains "usage: dpone-plan [-hqV]"
}

@test "dpone-plan --version" {
	run dpone-plan --version
	assert_success
	assert_output "dpone-plan 0.1.0"
}

@test "dpone-plan: an unknown option is a usage error" {
	run dpone-plan --bogus m.yaml
	assert_failure 2
	assert_output_contains "dpone-plan: unknown option --bogus"
	assert_output_contains "usage: dpone-plan"
}

@test "dpone-plan --get, repeated: a line per key in order, an empty line for an absent one" {
	cat > g.yaml <<'YAML'
name: get_job
source: {type: mssql, connection_id: mssql_dwh, table: {name: t}}
sink: {type: kafka, connection_id: kafka_cluster, topic: t, strategy: {mode: full_refresh}}
observability: {artifacts: {path: "two\nlines"}}
YAML
	run dpone-plan --get name --get no.such.key --get observability.artifacts.keep \
		--get observability.artifacts.path --get sink.strategy g.yaml
	assert_success
	[ "$(printf '%s\n' "$output" | wc -l)" -eq 5 ] || flunk "not 5 lines: $output"
	[ "$(printf '%s\n' "$output" | sed -n 1p)" = get_job ] || flunk "$output"
	[ -z "$(printf '%s\n' "$output" | sed -n 2p)" ] || flunk "$output"
	[ "$(printf '%s\n' "$output" | sed -n 3p)" = 20 ] || flunk "$output"
	# A relative path is the manifest's neighbour; a newline keeps it JSON.
	[ "$(printf '%s\n' "$output" | sed -n 4p)" = "\"$(pwd -P)/two\\nlines\"" ] || flunk "$output"
	printf '%s\n' "$output" | sed -n 5p | grep -q '^{"mode": *"full_refresh"' || flunk "$output"
}

@test "dpone-plan: a missing manifest operand is a usage error" {
	run dpone-plan
	assert_failure 2
	assert_output_contains "dpone-plan: missing MANIFEST"
}

@test "dpone-plan: a bad manifest exits 2 with file:line:col" {
	write_manifest
	sed -i 's/^  topic: dwh.orders/  topik: dwh.orders/' m.yaml
	run dpone-plan m.yaml
	assert_failure 2
	assert_output "dpone-plan: m.yaml:10:3: sink.topik: unknown key (did you mean 'topic'?)"
}

@test "dpone-plan --print-manifest prints the resolved manifest" {
	write_manifest
	use_env_connections "Pl4nted-plan-$$"
	run dpone-plan --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.password)" = "***" ]
	refute_output_contains "Pl4nted-plan-$$"
}

@test "dpone plan --format md: connections redacted, the exact SQL, state before and after, checks" {
	orders_job
	run dpone plan m.yaml --format md
	assert_success
	assert_output_contains "# Plan: plan_$T"
	assert_output_contains "| source | mssql_dwh | mssql | env DPONE_CONN_MSSQL_DWH | $DPONE_TEST_MSSQL_HOST | $DPONE_TEST_MSSQL_USER | *** |"
	refute_output_contains "$DPONE_TEST_MSSQL_PASSWORD"
	assert_output_contains "SELECT [order_id], CAST([customer] AS varbinary(80)), [updated_at] FROM [dbo].[$T] WHERE ([updated_at] <= CAST(N'2026-11-26T08:00:05.1234567' AS datetime2(7))) ORDER BY [updated_at], [order_id]"
	assert_output_contains "- rows in the boundary now: 5"
	assert_output_contains "- watermark now: none"
	assert_output_contains "- watermark after a successful run: 2026-11-26T08:00:05.1234567"
	assert_output_contains "| updated_at | datetime2(7) | timestamp | no |"
	assert_output_contains "| min_rows | {\"threshold\":1} | error | at the end of the stream, before state is committed: rows already delivered stay visible"
	assert_output_contains "| hash_reconciliation | {} | error | at commit, by dpone-state"
	assert_output_contains "- run directory: $(pwd -P)/runs/RUN_ID"
}

@test "dpone-plan --format json: the documented keys" {
	orders_job
	run dpone-plan --format json m.yaml
	assert_success
	jq -e --arg t "$T" '.plan_version == 1 and .job == "plan_\($t)" and .changes_nothing == true
		and .connections.source.password == "***" and .connections.sink.brokers == "127.0.0.1:9"
		and .source.table == $t and .source.key == ["order_id"] and (.source.columns | length) == 3
		and .boundary.kind == "incremental" and .boundary.column == "updated_at" and .boundary.rows == 5
		and .boundary.high == "2026-11-26T08:00:05.1234567" and (.boundary.sql | startswith("SELECT "))
		and (.boundary.count_sql | startswith("SELECT COUNT_BIG(*)"))
		and .strategy.mode == "incremental_merge" and .strategy.duplicate_policy == "fail"
		and .sink.topic == "dwh.\($t)" and .sink.delivery == "at_least_once" and .sink.transactional == false
		and .state.type == "file" and .state.watermark_before == null
		and .state.watermark_after == "2026-11-26T08:00:05.1234567"
		and .quality.mode == "fail" and (.quality.checks | map(.type)) == ["min_rows", "not_null", "hash_reconciliation"]
		and (.quality.checks | all(.decided | type == "string"))
		and .artifacts.run_directory == $dir + "/runs/RUN_ID"' --arg dir "$(pwd -P)" <<< "$output" > /dev/null || flunk "$output"
}

@test "dpone-plan starts where state stands and changes nothing" {
	orders_job
	dpone-state -q m.yaml reset --to '"2026-11-26T08:00:03.1234567"' > /dev/null
	cp state/plan.json before.json
	run dpone-plan --format json m.yaml
	assert_success
	jq -e '.boundary.from == "2026-11-26T08:00:03.1234567" and .boundary.low == "2026-11-26T08:00:03.1234567"
		and .boundary.rows == 2 and .state.watermark_before == "2026-11-26T08:00:03.1234567"
		and (.boundary.sql | contains("[updated_at] > CAST(N'"'"'2026-11-26T08:00:03.1234567'"'"' AS datetime2(7))"))' \
		<<< "$output" > /dev/null || flunk "$output"
	cmp before.json state/plan.json
	[ ! -e runs ] || flunk "the plan created the artifact directory"
	# A job with no state yet: the state file is not created by planning.
	rm -r state
	run dpone-plan m.yaml
	assert_success
	[ ! -e state ] || flunk "the plan created the state directory"
}

@test "dpone-plan: with exactly_once the checks are decided before the transaction commits" {
	orders_job exactly_once
	run dpone-plan --format json m.yaml
	assert_success
	jq -e '.sink.transactional == true and (.sink.staging | contains("one Kafka transaction"))
		and (.quality.checks[0].decided | contains("before the Kafka transaction commits"))' \
		<<< "$output" > /dev/null || flunk "$output"
}

@test "dpone-plan --from/--to plan a manual window; refused where there is no incremental boundary" {
	orders_job
	run dpone-plan --format json --from 2026-11-26T08:00:01.1234567 --to 2026-11-26T08:00:02.1234567 m.yaml
	assert_success
	jq -e '.boundary.rows == 1 and .boundary.high == "2026-11-26T08:00:02.1234567"' <<< "$output" > /dev/null ||
		flunk "$output"
	sed -i 's/incremental_column: updated_at, //; s/mode: incremental_merge/mode: full_refresh/' m.yaml
	run dpone-plan --from 1 m.yaml
	assert_failure 2
	assert_output_contains "--from and --to bound an incremental run"
	run dpone-plan --format json m.yaml
	assert_success
	jq -e '.boundary.kind == "full" and .boundary.rows == 5 and .state.watermark_after == null' <<< "$output" > /dev/null ||
		flunk "$output"
}

@test "dpone-plan: a missing table fails with the extract's message and its exit status" {
	orders_job
	sed -i "s/table: {name: $T}/table: {name: nosuch}/" m.yaml
	run dpone-plan m.yaml
	assert_failure 4
	assert_output_contains "table dbo.nosuch does not exist"
	assert_output_contains "cannot plan: dpone-extract failed (exit status 4); nothing was changed"
}

@test "dpone-plan: an unreadable state fails with the state's exit status" {
	orders_job
	mkdir -p state && echo '{not json' > state/plan.json
	run dpone-plan m.yaml
	assert_failure 6
	assert_output_contains "not a dpone state file"
}

@test "dpone-plan --format: only md or json" {
	write_manifest
	run dpone-plan --format html m.yaml
	assert_failure 2
	assert_output_contains "--format html: expected md or json"
}

@test "dpone schema infer: a contract YAML from a sample, that dpone-check accepts as it is" {
	orders_job
	sql <<SQL
INSERT INTO $T VALUES (6, N'', '2026-11-26 08:00:06'), (7, N'42', '2026-11-26 08:00:07')
SQL
	run dpone schema infer --manifest m.yaml --sample 6
	assert_success
	printf '%s\n' "$output" > contract.yaml
	assert_output_contains "# from a sample of 6 rows (the first the server returned, not a random sample)."
	python3 - <<'PY' || flunk "$output"
import yaml
c = yaml.safe_load(open("contract.yaml"))["contract"]
cols = c["columns"]
assert list(cols) == ["order_id", "customer", "updated_at"], list(cols)
assert cols["order_id"]["logical_type"] == "integer" and cols["order_id"]["key"] is True
assert cols["order_id"]["profile"]["min"] == 1 and cols["order_id"]["profile"]["max"] == 6
assert cols["customer"]["logical_type"] == "string"
assert abs(cols["customer"]["profile"]["empty_string_ratio"] - 1 / 6) < 1e-3
assert cols["customer"]["profile"]["distinct_estimate"] == 6
assert cols["updated_at"]["sql_type"] == "datetime2(7)" and cols["updated_at"]["nullable"] is False
assert c["sample"]["rows"] == 6 and c["enforcement"] == "warn"
PY
	printf 'contract: contract.yaml\n' >> m.yaml
	run bash -c 'dpone-extract -q m.yaml | dpone-check -q m.yaml | grep "^\[\"checks\""'
	assert_success
	jq -e '.[1].results[] | select(.type == "contract") | .status == "pass"' <<< "$output" > /dev/null || flunk "$output"
}

@test "dpone schema infer: min and max are the sample's true extremes (numbers, numeric strings, dates, strings)" {
	load_env
	T="p$BATS_TEST_NUMBER"
	{
		echo "DROP TABLE IF EXISTS $T"
		echo "CREATE TABLE $T (id int NOT NULL PRIMARY KEY, code varchar(10) NOT NULL, d date NOT NULL, s nvarchar(10) NOT NULL, amt decimal(9,2) NOT NULL)"
		for i in $(seq 1 307); do
			echo "INSERT INTO $T VALUES ($i, '$i', '2026-0$((i % 9 + 1))-1$((i % 10))', N'a$((i % 3))', $((400 - i)).25)"
		done
		echo "INSERT INTO $T VALUES (1000, '-5', '2025-12-31', N'a', 7.5)"
		echo "INSERT INTO $T VALUES (1001, '9', '2026-09-30', N'a b', 1000.75)"
	} | sql > /dev/null
	cat > m.yaml <<YAML
name: infer_$T
source: {type: mssql, connection_id: mssql_dwh, table: {name: $T}}
sink: {type: kafka, connection_id: kafka_cluster, topic: t, strategy: {mode: full_refresh}}
YAML
	run dpone schema infer --manifest m.yaml --sample 1000
	assert_success
	printf '%s\n' "$output" > contract.yaml
	python3 - <<'PY' || flunk "$output"
import yaml, datetime
cols = yaml.safe_load(open("contract.yaml"))["contract"]["columns"]
def extremes(c):
    p = cols[c]["profile"]
    return p["min"], p["max"]
assert extremes("id") == (1, 1001), extremes("id")
assert cols["code"]["logical_type"] == "integer", cols["code"]
assert extremes("code") == ("-5", "307"), extremes("code")
assert tuple(map(str, extremes("d"))) == ("2025-12-31", "2026-09-30"), extremes("d")
assert extremes("s") == ("a", "a2"), extremes("s")
assert extremes("amt") == ("7.50", "1000.75"), extremes("amt")
PY
}

@test "every column the manifest names is checked at plan: exit 2 with the key, the name and the closest column" {
	orders_job
	cases=(
		"s/incremental_column: updated_at/incremental_column: updatedat/|source.options.incremental_column: column 'updatedat' is not in dbo.$T (did you mean 'updated_at'?)"
		"s/unique_key: \[order_id\]/unique_key: [order_id, custmer]/|sink.strategy.unique_key[1]: column 'custmer' is not in dbo.$T (did you mean 'customer'?)"
		"s/columns: \[customer\]}/columns: [custmer]}/|quality.checks[1].columns[0]: column 'custmer' is not in dbo.$T (did you mean 'customer'?)"
		"s/batch_size: 1000}/batch_size: 1000, columns: [order_id, ORDERID, updated_at]}/|source.options.columns[1]: column 'ORDERID' is not in dbo.$T (did you mean 'order_id'?)"
		"s/delivery: {mode: at_least_once}}/delivery: {mode: at_least_once}, key: {fields: [Customer, id]}}/|sink.options.key.fields[1]: column 'id' is not in dbo.$T"
	)
	cp m.yaml good.yaml
	for c in "${cases[@]}"; do
		sed "${c%%|*}" good.yaml > m.yaml
		run dpone plan m.yaml
		assert_failure 2
		assert_output_contains "${c#*|}"
		run dpone-extract -q m.yaml
		assert_failure 2
		assert_output_contains "${c#*|}"
	done
	# Names are matched as SQL Server matches them: without case.
	sed 's/columns: \[customer\]}/columns: [CUSTOMER]}/' good.yaml > m.yaml
	run dpone plan m.yaml
	assert_success
	# The contract's columns too, named with their file.
	printf 'contract:\n  columns:\n    order_id: {logical_type: integer}\n    amount: {logical_type: decimal}\n' > contract.yaml
	{ cat good.yaml; echo "contract: contract.yaml"; } > m.yaml
	run dpone plan m.yaml
	assert_failure 2
	assert_output_contains "$(pwd -P)/contract.yaml: contract.columns.amount: column 'amount' is not in dbo.$T"
}

@test "dpone schema physical-plan: partitions, cleanup policy and message size from the source and the strategy" {
	orders_job
	run dpone schema physical-plan --manifest m.yaml --format json
	assert_success
	jq -e --arg t "dwh.$T" '.topic == $t and .partitions == 3 and .replication_factor == 3 and .source_rows == 5
		and .configs["cleanup.policy"] == "compact" and .configs["min.insync.replicas"] == 2
		and .configs["max.message.bytes"] == 1048588 and (.why.partitions | length > 0)' <<< "$output" > /dev/null ||
		flunk "$output"
	# An append-only strategy, heavy throughput: delete policy, more partitions.
	sed -i 's/mode: incremental_merge/mode: incremental_append/' m.yaml
	run dpone schema physical-plan --manifest m.yaml --format json --throughput 1000000
	assert_success
	jq -e '.configs["cleanup.policy"] == "delete" and .configs["retention.ms"] == "604800000" and .partitions == 5' \
		<<< "$output" > /dev/null || flunk "$output"
	run dpone schema physical-plan --manifest m.yaml
	assert_success
	assert_output_contains "| cleanup.policy | delete | an event log: old events expire by time |"
}

@test "source_custom_predicate is one boolean expression: plan never runs what it smuggles in" {
	orders_job
	sql <<SQL
DROP TABLE IF EXISTS victim_$T
CREATE TABLE victim_$T (id int NOT NULL PRIMARY KEY)
INSERT INTO victim_$T VALUES (1)
SQL
	for predicate in "1=1); DROP TABLE dbo.victim_$T; --" "1=1) OR (1=1" "1=1 -- the rest" "1=1 /* c */" \
		"(1=1" "customer = 'a" "1=1 UNION SELECT 1" "1=1; EXEC sp_who" "" "[customer = 1"; do
		sed -i "s|^  options: {incremental_column: updated_at.*|  options: {incremental_column: updated_at, source_custom_predicate: \"$predicate\"}|" m.yaml
		run dpone plan m.yaml --format json
		assert_failure 2
		assert_output_contains "source.options.source_custom_predicate"
		assert_output_contains "give one boolean expression"
	done
	[ "$(echo "SELECT COUNT(*) FROM victim_$T" | sql | tail -n 1 | tr -d ' ')" = 1 ] || flunk "the victim table was touched"
	# What an expression may hold: strings with quotes, separators and
	# keywords in them, bracketed names, parentheses.
	sed -i "s|^  options: {incremental_column: updated_at.*|  options: {incremental_column: updated_at, source_custom_predicate: \"customer <> N'it''s; DROP --' AND ([customer] <> 'a' OR [order_id] < 0)\"}|" m.yaml
	run dpone plan m.yaml --format json
	assert_success
	[ "$(jq '.boundary.rows' <<< "$output")" = 4 ] || flunk "$output"
}
