#!/usr/bin/env bats
# examples/: the ways people schedule dpone (cron, systemd, make), each run
# as written against the stand-ins (or the servers DPONE_TEST_* name).

load test_helper
load stand_ins

stand_ins_per_file mssql kafka

setup() {
	common_setup
	load_env
}

# job NAME [CHECKS-YAML]: table NAME (ids 1..3, a nullable note) and
# jobs/NAME.yaml, an incremental job on it with state and artifacts beside it.
job() {
	local t="ex${BATS_TEST_NUMBER}_$1"
	sql <<SQL > /dev/null
DROP TABLE IF EXISTS $t
CREATE TABLE $t (id int NOT NULL PRIMARY KEY, note nvarchar(20) NULL, updated_at datetime2(7) NOT NULL)
INSERT INTO $t VALUES (1, N'a', '2026-12-01 00:00:01'), (2, N'b', '2026-12-01 00:00:02'), (3, N'c', '2026-12-01 00:00:03')
SQL
	mkdir -p jobs
	cat > "jobs/$1.yaml" <<YAML
name: $t
source: {type: mssql, connection_id: mssql_dwh, table: {name: $t}, options: {incremental_column: updated_at}}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: $t-$$
  strategy: {mode: incremental_append}
  options: {topic_config: {auto_create: true, partitions: 1}}
quality:
  checks:
    - {type: min_rows, threshold: 1}
${2:-}
YAML
}

topic_size() {
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$1-$$" -e -q -f '%k\n' | wc -l
}

# topic_ids TABLE: the distinct ids published (a failed at_least_once run
# may have published some before its checks failed).
topic_ids() {
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$1-$$" -e -q -f '%s\n' | jq -r .id | sort -u | tr '\n' ' '
}

@test "examples/Makefile: three tables with make -j4; a failed job has no stamp and fails make; each stamp means a good run" {
	job orders
	job customers
	job payments '    - {type: not_null, columns: [note]}'
	sql <<< "UPDATE ex${BATS_TEST_NUMBER}_payments SET note = NULL WHERE id = 2" > /dev/null
	run make -f "$SRCDIR/examples/Makefile" JOBS=jobs DPONE=dpone -j4 -k
	assert_failure
	assert_output_contains "dpone: batch run failed: dpone-check exited 8 (quality): not_null check failed"
	[ -f jobs/orders.done ] && [ -f jobs/customers.done ] || flunk "$(ls jobs)"
	[ ! -e jobs/payments.done ] || flunk "a stamp for a failed job"
	[ "$(topic_size "ex${BATS_TEST_NUMBER}_orders")" -eq 3 ]
	[ "$(topic_size "ex${BATS_TEST_NUMBER}_customers")" -eq 3 ]
	# Fixed: every job runs again; the idle ones exit 0 (--idle-ok), silent (-q).
	sql <<< "UPDATE ex${BATS_TEST_NUMBER}_payments SET note = N'x' WHERE id = 2" > /dev/null
	run make -s -f "$SRCDIR/examples/Makefile" JOBS=jobs DPONE=dpone -j4 -k
	assert_success
	assert_output ""
	[ -f jobs/payments.done ]
	[ "$(topic_ids "ex${BATS_TEST_NUMBER}_payments")" = "1 2 3 " ] || flunk "$(topic_ids "ex${BATS_TEST_NUMBER}_payments")"
	[ "$(topic_size "ex${BATS_TEST_NUMBER}_orders")" -eq 3 ] || flunk "orders published again"
}

@test "examples/cron/crontab: each job line, run as cron runs it (HOME as cwd, its PATH), is silent when all is well, loud when not" {
	job orders
	crontab=$SRCDIR/examples/cron/crontab
	# The job lines: five time fields, then the command.
	job_lines=$(grep -E '^[^#A-Z].*dpone batch run' "$crontab")
	[ "$(printf '%s\n' "$job_lines" | wc -l)" -eq 2 ] || flunk "$job_lines"
	command=$(printf '%s\n' "$job_lines" | head -n 1 | awk '{ $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print }')
	command=${command//\/etc\/dpone\/jobs\/orders.yaml/$PWD/jobs/orders.yaml}
	mkdir cronhome
	# cron's environment: the crontab's variables, HOME, nothing of ours but
	# the connections and where dpone is.
	cron() {
		(cd cronhome && env -i HOME="$PWD" PATH="$DPONE_BIN:/usr/bin:/bin" SHELL=/bin/sh \
			DPONE_CONN_MSSQL_DWH="$DPONE_CONN_MSSQL_DWH" DPONE_CONN_KAFKA_CLUSTER="$DPONE_CONN_KAFKA_CLUSTER" \
			/bin/sh -c "$command")
	}
	run cron
	assert_success
	assert_output ""
	[ "$(topic_size "ex${BATS_TEST_NUMBER}_orders")" -eq 3 ]
	# State and artifacts are beside the manifest, not in cron's HOME.
	[ -z "$(ls -A cronhome)" ] || flunk "cron's HOME got $(ls -A cronhome)"
	[ -d jobs/.dpone/state ]
	# An idle tick: exit 0, no output (no mail).
	run cron
	assert_success
	assert_output ""
	# A failure says why on its last line, so cron mails it.
	sed -i 's/threshold: 1}/threshold: 1}\n    - {type: max_rows, threshold: 0}/' jobs/orders.yaml
	sql <<< "INSERT INTO ex${BATS_TEST_NUMBER}_orders VALUES (4, N'd', '2026-12-01 00:00:04')" > /dev/null
	run cron
	assert_failure 8
	assert_output_contains "dpone: batch run failed: dpone-produce exited 8 (quality): max_rows check failed"
}

@test "examples/systemd: the service and timer pass systemd-analyze verify; the service's command runs the job" {
	job orders
	units=$BATS_TEST_TMPDIR/units
	mkdir -p "$units"
	sed "s#/usr/bin/dpone#$DPONE_BIN/dpone#" "$SRCDIR/examples/systemd/dpone@.service" > "$units/dpone@orders.service"
	cp "$SRCDIR/examples/systemd/dpone@.timer" "$units/dpone@orders.timer"
	run systemd-analyze verify --man=no "$units/dpone@orders.service" "$units/dpone@orders.timer"
	assert_success
	[ -z "$output" ] || flunk "$output"
	# ExecStart, with %i filled in and the manifest here.
	exec_start=$(sed -n 's/^ExecStart=//p' "$units/dpone@orders.service")
	exec_start=${exec_start//\/etc\/dpone\/jobs\/%i.yaml/$PWD/jobs/orders.yaml}
	run sh -c "$exec_start"
	assert_success
	assert_output_contains "dpone-produce: 3 rows read, 3 delivered,"
	assert_output_contains ": done"
	run sh -c "$exec_start"
	assert_success
}
