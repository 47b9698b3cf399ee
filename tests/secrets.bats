#!/usr/bin/env bats
# Secret hygiene, end to end: a unique password planted in every connection
# (SQL Server, Kafka SASL, PostgreSQL state) and the Vault token, for each
# connection_type (env, file, vault). While dpone plans, runs a batch, fails
# a batch and lists its runs, ps is sampled; afterwards the samples, every
# output and log, the run artifacts and the state are searched for each
# secret: there must be no hit.

load test_helper
load stand_ins

stand_ins_per_file mssql kafka pg

setup() {
	common_setup
	load_env
	T="s$BATS_TEST_NUMBER"
	TOPIC="secrets$BATS_TEST_NUMBER-$$"
	KAFKA_SECRET="Pl4nted-kafka-$$-$BATS_TEST_NUMBER"
	VAULT_TOKEN_SECRET="Pl4nted-vault-token-$$-$BATS_TEST_NUMBER"
	PROPERTY_SECRET="Pl4nted-property-$$-$BATS_TEST_NUMBER"
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (order_id int NOT NULL PRIMARY KEY, customer nvarchar(40) NOT NULL, updated_at datetime2(7) NOT NULL)
INSERT INTO $T VALUES (1, N'a', '2026-11-26 08:00:01'), (2, N'b', '2026-11-26 08:00:02')
SQL
	[ -z "${KAFKAD_CONTROL:-}" ] || control "$KAFKAD_CONTROL" "topic create $TOPIC 1 1" > /dev/null
}

teardown() {
	[ -z "${sampler_pid:-}" ] || kill "$sampler_pid" 2>/dev/null || true
	[ -z "${vault_pid:-}" ] || kill "$vault_pid" 2>/dev/null || true
	common_teardown
}

# The secrets: the servers' passwords (the stand-ins' are random per run,
# a real server's come from DPONE_TEST_*), the Kafka SASL password (the mock
# cluster speaks no SASL, so it stays on the plaintext listener, where
# librdkafka ignores it; it still goes everywhere a SASL password goes), and
# the Vault token, and librdkafka properties given in the manifest that hold
# secrets (ignored by the plaintext listener too).
secrets() {
	printf '%s\n' "$DPONE_TEST_MSSQL_PASSWORD" "$KAFKA_SECRET" "${DPONE_TEST_PG_URL#*://*:}" "$VAULT_TOKEN_SECRET" \
		"$PROPERTY_SECRET-sasl" "$PROPERTY_SECRET-ssl" |
		sed 's/@.*//' | grep -v '^$'
}

# job TYPE: an incremental job on $T with all three connections of TYPE.
job() {
	cat > m.yaml <<YAML
name: secrets_$T
source:
  type: mssql
  connection_id: mssql_dwh
  connection_type: $1
  table: {name: $T}
  options: {incremental_column: updated_at}
sink:
  type: kafka
  connection_id: kafka_cluster
  connection_type: $1
  topic: $TOPIC
  strategy: {mode: incremental_append, unique_key: [order_id]}
  options:
    topic_config: {auto_create: true}
    properties: {sasl.password: $PROPERTY_SECRET-sasl, ssl.key.password: $PROPERTY_SECRET-ssl}
state: {type: postgres, connection_id: postgres_state, connection_type: $1, table: {schema: etl_$T}}
quality:
  checks: [{type: min_rows, threshold: 1}, {type: source_target_count, tolerance_pct: 0}]
observability:
  artifacts: {path: runs}
YAML
}

kafka_url() {
	echo "kafka://dpone:$KAFKA_SECRET@$DPONE_TEST_KAFKA_BOOTSTRAP?sasl_mechanism=PLAIN"
}

start_vault() {
	jq -n --arg m "$DPONE_CONN_MSSQL_DWH" --arg k "$(kafka_url)" --arg p "$DPONE_TEST_PG_URL" \
		'{"secret/dpone/connections/mssql_dwh": {url: $m}, "secret/dpone/connections/kafka_cluster": {url: $k},
		  "secret/dpone/connections/postgres_state": {url: $p}}' > secrets.json
	printf '%s\n' "$VAULT_TOKEN_SECRET" > token
	chmod 600 token
	python3 "$BATS_TEST_DIRNAME/tools/vault-kv.py" secrets.json @token port vault.log &
	vault_pid=$!
	for _ in $(seq 1 100); do
		[ -s port ] && break
		sleep 0.05
	done
	VAULT_ADDR="http://127.0.0.1:$(cat port)"
	export VAULT_ADDR VAULT_TOKEN_FILE="$PWD/token"
}

# connections TYPE: make the connections resolvable that way.
connections() {
	local mssql=$DPONE_CONN_MSSQL_DWH
	unset DPONE_CONN_MSSQL_DWH DPONE_CONN_KAFKA_CLUSTER DPONE_CONN_POSTGRES_STATE
	case $1 in
	env)
		DPONE_CONN_KAFKA_CLUSTER="$(kafka_url)"
		export DPONE_CONN_MSSQL_DWH="$mssql" DPONE_CONN_KAFKA_CLUSTER DPONE_CONN_POSTGRES_STATE="$DPONE_TEST_PG_URL" ;;
	file)
		printf 'connections:\n  mssql_dwh: {url: "%s"}\n  kafka_cluster: {url: "%s"}\n  postgres_state: {url: "%s"}\n' \
			"$mssql" "$(kafka_url)" "$DPONE_TEST_PG_URL" > reg.yaml
		chmod 600 reg.yaml
		export DPONE_REGISTRY="$PWD/reg.yaml" ;;
	vault)
		DPONE_CONN_MSSQL_DWH=$mssql start_vault ;;
	esac
}

# Sample every process's command line until stopped.
start_sampler() {
	( while :; do ps -eo args >> ps.txt; sleep 0.02; done ) &
	sampler_pid=$!
}

# everything_said_and_kept: what the runs printed, logged and stored.
everything_said_and_kept() {
	cat out/* ps.txt
	find runs -type f -exec cat {} + 2>/dev/null | { zstdcat -f 2>/dev/null || cat; }
	psql "$DPONE_TEST_PG_URL" -Atc "select row_to_json(s) from etl_$T.dpone_state s" 2>&1
	psql "$DPONE_TEST_PG_URL" -Atc "select row_to_json(h) from etl_$T.dpone_state_history h" 2>&1
}

plant_and_run() {
	job "$1"
	connections "$1"
	mkdir out
	start_sampler
	dpone plan m.yaml --format md > out/plan.md 2>&1
	dpone plan m.yaml --format json > out/plan.json 2>&1
	dpone plan --print-manifest m.yaml > out/print-manifest 2>&1
	dpone batch run m.yaml > out/run1 2>&1 || echo "run 1: exit $?" >> out/failures
	# Nothing new: the min_rows gate fails the run (its error paths too).
	dpone batch run m.yaml > out/run2 2>&1 && echo "run 2 should have failed" >> out/failures
	dpone runs list m.yaml > out/runs-list 2>&1
	for run_dir in runs/*/; do
		dpone runs show m.yaml "$(basename "$run_dir")" >> out/runs-show 2>&1
	done
	dpone state m.yaml history > out/history 2>&1
	kill "$sampler_pid"
	sampler_pid=
	[ ! -s out/failures ] || flunk "$(cat out/failures out/run1 out/run2)"
	grep -q 'committed: 2 rows' out/run1 || flunk "$(cat out/run1)"
	grep -q 'dpone-produce' ps.txt || flunk "the ps sampler never saw a stage running"
	grep -q '"sasl.password": "\*\*\*"' out/print-manifest || flunk "$(cat out/print-manifest)"
	[ "$(grep -c '^' <(secrets))" -ge 3 ] || flunk "too few secrets: $(secrets | wc -l)"
	everything_said_and_kept > all.txt
	[ "$(wc -l < all.txt)" -gt 100 ] || flunk "too little was searched: $(wc -l < all.txt) lines"
	while read -r secret; do
		if grep -F -q -- "$secret" all.txt; then
			flunk "a secret leaked: $(grep -F -n -- "$secret" all.txt | head -3 | cut -c1-300)"
		fi
	done < <(secrets)
}

@test "secrets: connection_type env leaks nothing into ps, output, logs, artifacts or state" {
	plant_and_run env
}

@test "secrets: connection_type file leaks nothing into ps, output, logs, artifacts or state" {
	plant_and_run file
}

@test "secrets: connection_type vault (and its token) leak nothing into ps, output, logs, artifacts or state" {
	plant_and_run vault
}

@test "secrets: a wrong password in a failing login is not echoed" {
	job env
	connections env
	export DPONE_CONN_MSSQL_DWH="mssql://$DPONE_TEST_MSSQL_USER:Pl4nted-wrong-$$@$DPONE_TEST_MSSQL_HOST:$DPONE_TEST_MSSQL_PORT/$DPONE_TEST_MSSQL_DATABASE"
	run dpone batch run m.yaml
	assert_failure 4
	refute_output_contains "Pl4nted-wrong-$$"
	if grep -r -F -q "Pl4nted-wrong-$$" runs; then flunk "the wrong password is in the artifacts"; fi
}
