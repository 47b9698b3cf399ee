#!/usr/bin/env bats
# Observability of batch runs: Prometheus metrics (a textfile for
# node_exporter, a push to Debian's prometheus-pushgateway, read back over
# HTTP and checked with promtool), OpenLineage events (a local receiver,
# tests/tools/lineaged, or DPONE_TEST_LINEAGE_URL), JSON logs, and the
# example alert rules and dashboard.

load test_helper
load stand_ins

stand_ins_per_file mssql kafka pushgateway lineage

setup() {
	common_setup
	load_env
	T="o$BATS_TEST_NUMBER"
	TOPIC="obs$BATS_TEST_NUMBER-$$"
}

# orders N: table $T with orders 1..N.
orders() {
	{
		echo "DROP TABLE IF EXISTS $T"
		echo "CREATE TABLE $T (order_id int NOT NULL PRIMARY KEY, customer nvarchar(40) NULL, updated_at datetime2(7) NOT NULL)"
		for i in $(seq 1 "$1"); do
			echo "INSERT INTO $T VALUES ($i, N'c$i', '2026-11-26 08:00:$(printf %02d "$i").1234567')"
		done
	} | sql > /dev/null
}

# obs_manifest [OBSERVABILITY-YAML-LINES] [CHECKS]: an incremental job with
# metrics to a textfile and the Pushgateway, lineage to the receiver and a file.
obs_manifest() {
	cat > m.yaml <<YAML
name: obs_$T
source: {type: mssql, connection_id: mssql_dwh, table: {name: $T}, options: {incremental_column: updated_at}}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: $TOPIC
  strategy: {mode: incremental_append}
  options: {topic_config: {auto_create: true, partitions: 1}}
quality:
  checks:
    - {type: min_rows, threshold: 1}
${2:-}
observability:
  metrics: {textfile_dir: prom, pushgateway: {connection_id: pushgateway}}
  lineage: {connection_id: lineage, file: lineage.ndjson}
${1:-}
YAML
	mkdir -p prom
}

# pushed: the Pushgateway's metrics of this job.
pushed() {
	local auth=${DPONE_TEST_PUSHGATEWAY_URL#*://}
	auth=${auth%@*}
	local base=${DPONE_TEST_PUSHGATEWAY_URL%%://*}://${DPONE_TEST_PUSHGATEWAY_URL#*@}
	curl -fsS -u "$auth" "$base/metrics" | grep "dpone_job=\"obs_$T\""
}

# sample NAME [LABEL-MATCH] FILE: the value of a sample in an exposition file.
sample() {
	grep "^$1{" "$3" | grep -F -- "${2:-}" | head -n 1 | awk '{print $NF}'
}

@test "metrics: a textfile promtool accepts and the same samples in the Pushgateway, for success, nothing new and a failure" {
	orders 3
	obs_manifest
	run dpone batch run m.yaml
	assert_success
	file=prom/dpone_obs_$T.prom
	[ -f "$file" ] || flunk "no $file: $(ls prom)"
	run promtool check metrics < "$file"
	assert_success
	[ "$(sample dpone_last_run_outcome 'outcome="success"' "$file")" = 1 ]
	[ "$(sample dpone_last_run_rows_read '' "$file")" = 3 ]
	[ "$(sample dpone_last_run_messages_delivered '' "$file")" = 3 ]
	[ "$(sample dpone_last_run_exit_code '' "$file")" = 0 ]
	# The watermark 2026-11-26T08:00:03.1234567 as epoch seconds, and its lag.
	wm=$(sample dpone_watermark '' "$file")
	[ "$(awk -v w="$wm" 'BEGIN { print (w > 1795680002 && w < 1795680004) }')" = 1 ] || flunk "watermark $wm"
	lag=$(sample dpone_watermark_lag_seconds '' "$file")
	[ "$(awk -v l="$lag" -v now="$(date +%s)" 'BEGIN { print (l > now - 1795680004 - 60 && l < now - 1795680002 + 60) }')" = 1 ] || flunk "lag $lag"
	grep -q "^dpone_last_run_outcome{dpone_job=\"obs_$T\",table=\"dbo.$T\",topic=\"$TOPIC\",outcome=\"success\"} 1$" "$file" || flunk "$(cat "$file")"
	# The Pushgateway holds the same run under job="dpone", dpone_job=NAME.
	run pushed
	assert_success
	assert_output_contains 'dpone_last_run_rows_read{dpone_job="obs_'"$T"'",instance="",job="dpone",table="dbo.'"$T"'",topic="'"$TOPIC"'"} 3'
	# Nothing new: exit 11, outcome nothing_new, a success for the alert.
	run dpone batch run m.yaml
	assert_failure 11
	[ "$(sample dpone_last_run_outcome 'outcome="nothing_new"' "$file")" = 1 ] || flunk "$(cat "$file")"
	[ "$(sample dpone_last_run_outcome 'outcome="success"' "$file")" = 0 ]
	success=$(sample dpone_last_success_timestamp_seconds '' "$file")
	[ "$(awk -v s="$success" -v now="$(date +%s)" 'BEGIN { print (now - s < 60) }')" = 1 ] || flunk "last success $success"
	run pushed
	assert_output_contains 'outcome="nothing_new",table="dbo.'"$T"'",topic="'"$TOPIC"'"} 1'
	# A failure: the source table is gone.
	sql <<< "DROP TABLE $T" > /dev/null
	run dpone batch run m.yaml
	assert_failure 4
	[ "$(sample dpone_last_run_outcome 'outcome="source_failed"' "$file")" = 1 ] || flunk "$(cat "$file")"
	[ "$(sample dpone_last_run_exit_code '' "$file")" = 4 ]
	run promtool check metrics < "$file"
	assert_success
}

@test "metrics: a Pushgateway that is down or refuses the password is a warning and a count in the artifacts, never a failed run" {
	orders 2
	obs_manifest "  artifacts: {path: runs}"
	good=$DPONE_CONN_PUSHGATEWAY
	# Wrong password: the Pushgateway answers 401.
	export DPONE_CONN_PUSHGATEWAY="${good%%:*}://dpone:wrong@${good#*@}"
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "warning: report: pushgateway ${good%%:*}://${good#*@}: HTTP 401"
	refute_output_contains "wrong"
	dir=$(ls -d runs/*/ | tail -n 1)
	grep -q '^report_failures 1$' "$dir/status" || flunk "$(cat "$dir/status")"
	grep -q '^result committed$' "$dir/status"
	# Nothing listens there.
	export DPONE_CONN_PUSHGATEWAY="http://127.0.0.1:9/"
	sql <<< "INSERT INTO $T VALUES (3, N'c', '2026-11-26 08:00:03')" > /dev/null
	run dpone batch run m.yaml
	assert_success
	assert_output_contains "warning: report: pushgateway http://127.0.0.1:9/:"
	[ "$(dpone-state -q m.yaml get --watermark)" = '"2026-11-26T08:00:03.0000000"' ] || flunk "state: $(dpone-state -q m.yaml get)"
	# The textfile was still written.
	[ "$(sample dpone_last_run_rows_read '' "prom/dpone_obs_$T.prom")" = 1 ]
}

@test "lineage: START, then COMPLETE, FAIL or ABORT, each with the spec's required fields, datasets named as the spec names them" {
	orders 2
	obs_manifest
	run dpone batch run m.yaml
	assert_success
	sql <<< "INSERT INTO $T VALUES (3, NULL, '2026-11-26 08:00:03')" > /dev/null
	obs_manifest "" "    - {type: not_null, columns: [customer]}"
	run dpone batch run m.yaml
	assert_failure 8
	python3 - "$DPONE_TEST_MSSQL_HOST:$DPONE_TEST_MSSQL_PORT" "$DPONE_TEST_MSSQL_DATABASE" "$T" "$TOPIC" <<'PY' || flunk "$(cat lineage.ndjson)"
import json, re, sys, uuid, datetime
server, db, table, topic = sys.argv[1:]
events = [json.loads(l) for l in open("lineage.ndjson")]
assert [e["eventType"] for e in events] == ["START", "COMPLETE", "START", "FAIL"], [e["eventType"] for e in events]
def facet_ok(f):
    # format uri: a scheme, then what it names (RFC 3986).
    assert isinstance(f["_producer"], str) and re.match(r"[a-z][a-z0-9+.-]*:\S+$", f["_producer"]), f
    assert isinstance(f["_schemaURL"], str) and re.match(r"[a-z][a-z0-9+.-]*:\S+$", f["_schemaURL"]), f
for e in events:
    # RunEvent: run, job, eventTime, producer required.
    for k in ("run", "job", "eventTime", "producer"):
        assert k in e, (k, e)
    datetime.datetime.fromisoformat(e["eventTime"].replace("Z", "+00:00"))
    assert re.match(r"[a-z][a-z0-9+.-]*:\S+$", e["producer"]), e["producer"]
    uuid.UUID(e["run"]["runId"])
    assert isinstance(e["job"]["namespace"], str) and e["job"]["name"] == "obs_" + table
    for f in e["run"].get("facets", {}).values():
        facet_ok(f)
    for d in e.get("inputs", []) + e.get("outputs", []):
        assert isinstance(d["namespace"], str) and isinstance(d["name"], str), d
        for f in d.get("facets", {}).values():
            facet_ok(f)
# One run, one runId; two runs, two.
assert events[0]["run"]["runId"] == events[1]["run"]["runId"] != events[2]["run"]["runId"] == events[3]["run"]["runId"]
done = events[1]
assert done["inputs"][0]["namespace"] == "sqlserver://" + server, done["inputs"]
assert done["inputs"][0]["name"] == "%s.dbo.%s" % (db, table), done["inputs"]
assert [f["name"] for f in done["inputs"][0]["facets"]["schema"]["fields"]] == ["order_id", "customer", "updated_at"]
assert done["outputs"][0]["namespace"].startswith("kafka://") and done["outputs"][0]["name"] == topic, done["outputs"]
assert done["run"]["facets"]["dpone"]["rows"] == 2 and done["run"]["facets"]["dpone"]["outcome"] == "success"
fail = events[3]
assert fail["run"]["facets"]["dpone"]["outcome"] == "quality_failed"
assert "not_null check failed" in fail["run"]["facets"]["errorMessage"]["message"], fail["run"]["facets"]
PY
	# The receiver got the same events.
	if [ -n "${LINEAGE_EVENTS:-}" ]; then
		[ "$(jq -c 'select(.job.name == "obs_'"$T"'") | .eventType' "$LINEAGE_EVENTS" | tr -d '"' | tr '\n' ' ')" = "START COMPLETE START FAIL " ] ||
			flunk "$(cat "$LINEAGE_EVENTS")"
	fi
}

@test "lineage: an interrupted run ends with ABORT" {
	orders 2
	obs_manifest
	export DPONE_CONN_MSSQL_DWH_REAL="$DPONE_CONN_MSSQL_DWH"
	# A source that never answers the login: the run is stopped meanwhile.
	python3 -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(5)
print(s.getsockname()[1], flush=True); time.sleep(60)' > port.txt &
	listener=$!
	while [ ! -s port.txt ]; do sleep 0.05; done
	DPONE_CONN_MSSQL_DWH="mssql://u:p@127.0.0.1:$(cat port.txt)/dwh" dpone batch run m.yaml > out.txt 2>&1 &
	pid=$!
	sleep 1.5
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	kill "$listener"
	[ "$rc" -eq 130 ] || flunk "exit $rc: $(cat out.txt)"
	[ "$(jq -r .eventType lineage.ndjson | tr '\n' ' ')" = "START ABORT " ] || flunk "$(cat lineage.ndjson)"
	[ "$(sample dpone_last_run_outcome 'outcome="interrupted"' "prom/dpone_obs_$T.prom")" = 1 ]
}

@test "logs: --log-format json (or the manifest's log_format) makes every stage and the wrapper write JSON lines" {
	orders 2
	obs_manifest "  log_format: json" "    - {type: max_rows, threshold: 1}"
	run dpone batch run m.yaml
	assert_failure 8
	# Every line is one JSON object with time, level, stage, job, run_id, message.
	printf '%s\n' "$output" > log.ndjson
	jq -e -s --arg job "obs_$T" 'length > 0 and all(.[]; (.time | test("^[0-9-]+T[0-9:.]+Z$")) and (.level | IN("info", "warning", "error"))
		and (.stage | startswith("dpone")) and .job == $job and (.run_id | length > 0) and (.message | type == "string"))' log.ndjson > /dev/null ||
		flunk "$output"
	jq -e -s 'any(.[]; .stage == "dpone-produce" and .level == "error" and .exit_code == 8 and .exit == "quality")' log.ndjson > /dev/null || flunk "$output"
	jq -e -s 'any(.[]; .stage == "dpone" and .level == "error" and .exit_code == 8 and (.message | startswith("batch run failed: dpone-produce exited 8 (quality): max_rows check failed")))' log.ndjson > /dev/null ||
		flunk "$output"
	[ "$(jq -r -s '[.[].run_id] | unique | length' log.ndjson)" = 1 ]
	# A manifest error names the file, line, column and key.
	printf 'name: x\nsource: {type: mssql, connection_id: a, table: {name: t}, options: {query_timeout: soon}}\nsink: {type: kafka, connection_id: b, topic: t, strategy: {mode: full_refresh}}\n' > bad.yaml
	run dpone-extract --log-format json bad.yaml
	assert_failure 2
	jq -e '.level == "error" and .file == "bad.yaml" and .line == 2 and .key == "source.options.query_timeout" and .exit_code == 2' <<< "$output" > /dev/null ||
		flunk "$output"
	# Text stays the default.
	obs_manifest
	run dpone batch run m.yaml
	[[ "${lines[0]}" == dpone* ]] || flunk "$output"
}

@test "examples/prometheus: the alert rules load and their unit tests pass (promtool test rules)" {
	run promtool check rules "$SRCDIR/examples/prometheus/dpone.rules.yml"
	assert_success
	run sh -c "cd '$SRCDIR/examples/prometheus' && promtool test rules dpone.rules.test.yml"
	assert_success
	assert_output_contains "SUCCESS"
	# Every metric a rule or the dashboard uses is one dpone exports (a real run's file).
	orders 1
	obs_manifest "" "    - {type: not_null, columns: [customer]}"
	run dpone batch run m.yaml
	assert_success
	file=prom/dpone_obs_$T.prom
	for used in $(grep -o 'dpone_[a-z_]*' "$SRCDIR/examples/prometheus/dpone.rules.yml" | grep -v '^dpone_job$' | sort -u) \
		$(jq -r '.panels[].targets[].expr' "$SRCDIR/examples/grafana/dpone.json" | grep -o 'dpone_[a-z_]*{' | tr -d '{' | sort -u); do
		grep -q "^# TYPE $used " "$file" || flunk "$used is not a metric dpone exports"
	done
	jq -e '.title and (.panels | length > 0) and all(.panels[]; .targets | length > 0)' "$SRCDIR/examples/grafana/dpone.json" > /dev/null
}

@test "secrets: no password in metrics files, pushed metrics, lineage events or JSON logs" {
	orders 2
	obs_manifest "  log_format: json"
	run dpone batch run m.yaml
	assert_success
	printf '%s\n' "$output" > log.ndjson
	for url in "$DPONE_CONN_MSSQL_DWH" "$DPONE_TEST_PUSHGATEWAY_URL"; do
		password=$(sed -n 's|^[a-z]*://[^:]*:\([^@]*\)@.*|\1|p' <<< "$url")
		[ -n "$password" ] || continue
		! grep -rqF -- "$password" prom lineage.ndjson log.ndjson || flunk "a password is in an artifact"
		run pushed
		refute_output_contains "$password"
		if [ -n "${LINEAGE_EVENTS:-}" ]; then
			! grep -qF -- "$password" "$LINEAGE_EVENTS" || flunk "a password reached the lineage receiver"
		fi
	done
}
