#!/usr/bin/env bats
# Manifest loading and checking (libcommon/manifest.c), seen through
# dpone-plan --print-manifest, which prints the resolved manifest.

load test_helper

resolved() {
	use_env_connections
	dpone-plan --print-manifest "$1"
}

@test "the guide's example manifest loads cleanly" {
	sed 's/connection_type: vault/connection_type: env/' "$SRCDIR/examples/mssql_to_kafka.yaml" > m.yaml
	export DPONE_CONN_POSTGRES_STATE="postgres://dpone:pw@127.0.0.1:5432/state"
	run resolved m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .sink.strategy.unique_key[0])" = order_id ]
	[ "$(echo "$output" | jq -r .source.options.export_mode)" = bcp ]
	[ "$(echo "$output" | jq -r .sink.options.delivery.linger_ms)" = 20 ]
	[ "$(echo "$output" | jq -r .quality.checks[1].tolerance_pct)" = 0.1 ]
	# Relative paths are the manifest's neighbours, made absolute.
	[ "$(echo "$output" | jq -r .observability.artifacts.path)" = "$(pwd -P)/.dpone/runs/mssql_to_kafka" ]
}

@test "the example manifest is the guide's manifest verbatim" {
	sed -n '/^name: mssql_to_kafka_example/,/path: .dpone\/runs\/mssql_to_kafka/p' \
		"$SRCDIR/../shared/spec/mssql-to-kafka-guide.txt" > guide.yaml 2>/dev/null ||
		[ ! -f "$SRCDIR/../shared/spec/mssql-to-kafka-guide.txt" ]
	if [ -s guide.yaml ]; then
		diff guide.yaml "$SRCDIR/examples/mssql_to_kafka.yaml"
	fi
	grep -q '^name: mssql_to_kafka_example$' "$SRCDIR/examples/mssql_to_kafka.yaml"
}

@test "defaults are applied and a single unique_key becomes a list" {
	write_manifest
	cat >> m.yaml <<'YAML'
    unique_key: order_id
YAML
	run resolved m.yaml
	assert_success
	[ "$(echo "$output" | jq -c .sink.strategy.unique_key)" = '["order_id"]' ]
	[ "$(echo "$output" | jq -r .source.table.schema)" = dbo ]
	[ "$(echo "$output" | jq -r .source.options.batch_size)" = 50000 ]
	[ "$(echo "$output" | jq -r .sink.options.key.mode)" = unique_key ]
	[ "$(echo "$output" | jq -r .sink.options.delivery.mode)" = at_least_once ]
	[ "$(echo "$output" | jq -r .state.type)" = file ]
	[ "$(echo "$output" | jq -r .state.path)" = "$(pwd -P)/.dpone/state/orders_job.json" ]
	[ "$(echo "$output" | jq -r .quality.mode)" = fail ]
}

@test "without unique_key the message key defaults to the primary key" {
	write_manifest
	run resolved m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .sink.options.key.mode)" = primary_key ]
}

@test "a Python dpone Kafka manifest loads with the same meaning" {
	run resolved "$FIXTURES/manifests/python_dpone_kafka.yaml"
	assert_success
	[ "$(echo "$output" | jq -r .sink.topic)" = legacy.orders ]
	[ "$(echo "$output" | jq -c .sink.options.key.fields)" = '["order_id"]' ]
	[ "$(echo "$output" | jq -r .sink.options.envelope)" = dpone ]
	[ "$(echo "$output" | jq -r .sink.options.delivery.flush_timeout)" = 60 ]
	[ "$(echo "$output" | jq -r .sink.options.headers.version)" = 2 ]
	[ "$(echo "$output" | jq -r .quality.checks[1].tolerance.mode)" = pct ]
}

@test "an unknown key is an error with a suggestion and its position" {
	write_manifest
	sed -i 's/^  connection_id: mssql_dwh/  conection_id: mssql_dwh/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output "dpone-extract: m.yaml:4:3: source.conection_id: unknown key (did you mean 'connection_id'?)"
}

@test "a key we do not support is named, never ignored" {
	write_manifest
	cat >> m.yaml <<'YAML'
  options:
    pre_sql: "DELETE FROM x"
YAML
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "m.yaml:14:5: sink.options.pre_sql: unknown key"
}

@test "a wrong type names the key and what was expected" {
	write_manifest
	sed -i 's/^    name: orders/    name: orders\n  options:\n    batch_size: "many"/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output "dpone-extract: m.yaml:8:17: source.options.batch_size: expected an integer, got a string"
}

@test "an out-of-range number is refused" {
	write_manifest
	sed -i 's/^    name: orders/    name: orders\n  options:\n    batch_size: 0/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "source.options.batch_size: 0 is out of range [1, 1e+07]"
}

@test "a bad enum value lists the allowed values and the closest one" {
	write_manifest
	sed -i 's/mode: full_refresh/mode: full_refesh/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "m.yaml:12:11: sink.strategy.mode: 'full_refesh' is not one of full_refresh, incremental_append"
	assert_output_contains "(did you mean 'full_refresh'?)"
}

@test "a missing required key is named" {
	write_manifest
	sed -i '/^  topic: dwh.orders/d' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "sink.topic: missing required key"
	write_manifest
	sed -i '/^name: orders_job/d' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "m.yaml:1:1: name: missing required key"
}

@test "incremental_merge needs unique_key" {
	write_manifest
	sed -i 's/mode: full_refresh/mode: incremental_merge/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "sink.strategy.unique_key: incremental_merge needs unique_key"
}

@test "unique_key may be a list and must name distinct columns" {
	write_manifest
	printf '    unique_key: [a, b, a]\n' >> m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "sink.strategy.unique_key[2]: 'a' is listed twice"
	write_manifest
	printf '    unique_key: [a, 3]\n' >> m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "sink.strategy.unique_key[1]: expected a non-empty string, got an integer"
}

@test "partition_replace on Kafka is refused with the guide's reason" {
	write_manifest
	sed -i 's/mode: full_refresh/mode: partition_replace/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "a topic is an append-only event log; use incremental_merge with merge_policy: event_upsert"
}

@test "snapshot_reconciliation loads in every delete mode, quietly (dpone plan says it is not recommended)" {
	for mode in tombstone soft_delete; do
		write_manifest
		sed -i "s/mode: full_refresh/mode: snapshot_reconciliation\n    unique_key: id\n    delete_mode: $mode/" m.yaml
		run resolved m.yaml
		assert_success
		refute_output_contains "warning"
	done
	write_manifest
	sed -i 's/mode: full_refresh/mode: snapshot_reconciliation\n    unique_key: id\n    delete_mode: report_only/' m.yaml
	run resolved m.yaml
	assert_success
	refute_output_contains "warning"
}

@test "cdc needs an mssql source" {
	write_manifest
	sed -i 's/type: mssql/type: postgres/; s/mode: full_refresh/mode: cdc/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "source.type: 'postgres': strategy cdc reads SQL Server change data capture and needs type mssql"
}

@test "quality mode must be fail, warn or off; checks are checked" {
	write_manifest
	printf 'quality:\n  mode: strict\n' >> m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "quality.mode: 'strict' is not one of fail, warn, off"
	write_manifest
	printf 'quality:\n  checks:\n    - type: min_rows\n' >> m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "quality.checks[0]: min_rows needs threshold"
	write_manifest
	printf 'quality:\n  checks:\n    - type: row_count\n' >> m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "quality.checks[0].type: 'row_count' is not one of"
}

@test "incremental_append needs incremental_column" {
	write_manifest
	sed -i 's/mode: full_refresh/mode: incremental_append/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "source.options.incremental_column: incremental_append needs the column"
}

@test "columns must include the key and the incremental column" {
	write_manifest
	sed -i 's/^    name: orders/    name: orders\n  options:\n    columns: [a, b]\n    incremental_column: c/; s/mode: full_refresh/mode: incremental_append/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "source.options.incremental_column: 'c' is not in source.options.columns"
}

@test "a tombstone needs a message key" {
	write_manifest
	printf '  options:\n    key: {mode: "null"}\n    deletes: {enabled: true, tombstone: true}\n' >> m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "a tombstone deletes a key, so key.mode must not be null"
}

@test "a schema registry is refused, not silently ignored" {
	write_manifest
	printf '  options:\n    schema_registry: {enabled: true}\n' >> m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "sink.options.schema_registry.enabled: a schema registry is not supported"
}

@test "only mssql sources and kafka sinks" {
	write_manifest
	sed -i '0,/type: mssql/s//type: oracle/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "source.type: 'oracle' is not supported"
	write_manifest
	sed -i 's/type: kafka/type: clickhouse/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "sink.type: 'clickhouse' is not supported"
}

@test "YAML syntax errors give the line and column" {
	printf 'name: x\nsource: [unclosed\n' > m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "m.yaml:3:1: YAML error:"
}

@test "duplicate keys are refused" {
	write_manifest
	printf 'name: again\n' >> m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "m.yaml:13:1: name: duplicate key"
}

@test "a file that is not a mapping, empty or missing is refused" {
	printf -- '- a\n- b\n' > list.yaml
	run dpone-extract list.yaml
	assert_failure 2
	assert_output_contains "list.yaml:1:1: the top level must be a mapping"
	: > empty.yaml
	run dpone-extract empty.yaml
	assert_failure 2
	assert_output_contains "empty.yaml:1:1: the file is empty"
	run dpone-extract nosuch.yaml
	assert_failure 2
	assert_output_contains "nosuch.yaml: No such file or directory"
}

@test "an alias bomb is bounded" {
	{
		echo 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'
		for i in 1 2 3 4 5 6 7 8; do
			p=$((i - 1))
			echo "a$i: &a$i [*a$p, *a$p, *a$p, *a$p, *a$p, *a$p, *a$p, *a$p, *a$p, *a$p]"
		done
	} > bomb.yaml
	run timeout 10 dpone-extract bomb.yaml
	assert_failure 2
	assert_output_contains "more than 100000 values after alias expansion"
}

@test "anchors with long keys reused as aliases stop at the expanded-size bound, in bounded memory" {
	{
		key=$(head -c 1000 /dev/zero | tr '\0' k) # a simple key's longest
		echo "a0: &a0 {$key: x}"
		for i in $(seq 1 40); do
			echo "a$i: &a$i {$key$i: *a$((i - 1)), b$i: *a$((i - 1))}"
		done
	} > wide.yaml
	run timeout 20 /usr/bin/time -f 'rss %M' dpone-extract wide.yaml
	assert_failure 2
	assert_output_contains "MiB of keys and values after alias expansion"
	rss=$(sed -n 's/^rss //p' <<< "$output")
	[ "$rss" -lt 262144 ] || flunk "$rss KiB to refuse it"
}

@test "deep nesting is refused before a tree is built; long values and large files are refused" {
	# A million levels of flow nesting in 2 MB: refused at level 65.
	{ printf 'a: '; head -c 1000000 /dev/zero | tr '\0' '['; head -c 1000000 /dev/zero | tr '\0' ']'; echo; } > deep.yaml
	run timeout 20 dpone-extract deep.yaml
	assert_failure 2
	assert_output_contains "deep.yaml:1:"
	assert_output_contains "nested deeper than 64 levels"
	{ printf 'name: '; head -c 100000 /dev/zero | tr '\0' x; echo; } > long.yaml
	run dpone-extract long.yaml
	assert_failure 2
	assert_output_contains "long.yaml:1:7: a value of 100000 bytes, more than 64 KiB"
	{ echo 'name: x'; for i in $(seq 1 5000); do printf 'k%d: %01000d\n' "$i" 0; done; } > big.yaml
	run dpone-extract big.yaml
	assert_failure 2
	assert_output_contains "big.yaml: 50"
	assert_output_contains "bytes, more than the 4194304 a manifest or registry may have (DPONE_MAX_YAML_BYTES)"
	write_manifest
	DPONE_MAX_YAML_BYTES=100 run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "(DPONE_MAX_YAML_BYTES)"
}

@test "YAML tags are refused, but !!str, which makes a plain scalar a string" {
	write_manifest
	use_env_connections
	for tagged in 'description: !!python/name:os.system x' 'description: !evil x' 'description: !!int 5' \
		'description: !!map {a: b}'; do
		write_manifest
		echo "$tagged" >> m.yaml
		run dpone-plan --print-manifest m.yaml
		assert_failure 2
		assert_output_contains "m.yaml:13:"
		assert_output_contains "is not accepted (a manifest is plain data; only !!str, on a scalar, is honoured)"
	done
	write_manifest
	sed -i 's/^    name: orders$/    name: orders\n  options: {batch_size: !!str 10}/' m.yaml
	run dpone-plan --print-manifest m.yaml
	assert_failure 2
	assert_output_contains "source.options.batch_size: expected an integer"
	write_manifest
	echo 'description: !!str 10' >> m.yaml
	run resolved m.yaml
	assert_success
	[ "$(jq -c .description <<< "$output")" = '"10"' ] || flunk "$output"
}

@test "anchors and aliases within the bound work" {
	write_manifest
	cat > m.yaml <<'YAML'
name: aliased
source:
  type: mssql
  connection_id: mssql_dwh
  table: &t
    name: orders
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: dwh.orders
  strategy: {mode: full_refresh}
  options:
    headers: {table: orders}
YAML
	run resolved m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .source.table.name)" = orders ]
}

@test "the job name must be usable in paths" {
	write_manifest
	sed -i 's/^name: orders_job/name: "..\/evil"/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "name: '../evil' may use only letters"
}

@test "durations are parsed when the manifest loads: '1 day' is an error naming the forms, never -1 s at run time" {
	write_manifest
	printf 'quality:\n  checks:\n    - {type: freshness, column: updated_at, max_age: 1 day}\n' >> m.yaml
	run dpone-plan --print-manifest m.yaml
	assert_failure 2
	assert_output_contains "m.yaml:15:54:"
	assert_output_contains "quality.checks[0].max_age: '1 day' is not a duration: write a whole number and s, m, h or d"
	write_manifest
	sed -i 's/^    name: orders$/    name: orders\n  options: {incremental_column: updated_at, lookback: 1 day}/' m.yaml
	sed -i 's/mode: full_refresh/mode: incremental_append/' m.yaml
	run dpone-plan --print-manifest m.yaml
	assert_failure 2
	assert_output_contains "source.options.lookback: '1 day' is neither a number (integer columns) nor a duration"
	for ok in 25h 2 30s; do
		sed -i "s/lookback: [^}]*}/lookback: $ok}/" m.yaml
		run resolved m.yaml
		assert_success
	done
}

@test "an option that does not apply to the strategy is an error naming the strategies it is for" {
	use_env_connections
	cases=(
		"full_refresh|  options: {incremental_column: updated_at}|source.options.incremental_column: does not apply to strategy full_refresh (it is for incremental_append incremental_merge snapshot_reconciliation): remove it"
		"incremental_append|  options: {incremental_column: updated_at, capture_instance: dbo_orders}|source.options.capture_instance: does not apply to strategy incremental_append (it is for cdc)"
		"full_refresh|  options: {lookback: 2h}|source.options.lookback: does not apply to strategy full_refresh"
	)
	for c in "${cases[@]}"; do
		IFS='|' read -r mode options want <<< "$c"
		write_manifest
		sed -i "s/mode: full_refresh/mode: $mode/; s/^    name: orders/    name: orders\n$options/" m.yaml
		run dpone-extract m.yaml
		assert_failure 2
		assert_output_contains "$want"
	done
	write_manifest
	printf '    merge_policy: event_upsert\n' >> m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "sink.strategy.merge_policy: does not apply to strategy full_refresh (it is for incremental_merge)"
	write_manifest
	printf '    window: {column: d}\n' >> m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "sink.strategy.window: does not apply to strategy full_refresh (it is for replace)"
}
