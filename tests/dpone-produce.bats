#!/usr/bin/env bats
# dpone-produce: options, manifest handling, and publishing to Kafka
# (the mock cluster, or a real one named by DPONE_TEST_KAFKA_BOOTSTRAP;
# fault tests always use a private mock cluster), checked by consuming
# with kcat.

load test_helper
load stand_ins

stand_ins_per_file kafka --faults kafka

setup() {
	common_setup
	load_env
	TOPIC="produce$BATS_TEST_NUMBER-$$"
	export DPONE_CONN_MSSQL_DWH="mssql://u:p@127.0.0.1:9/d"
}

# make_topic NAME PARTITIONS: through the stand-in's control port, or on a
# real cluster through dpone-produce's own topic_config.auto_create.
make_topic() {
	if [ -n "${KAFKAD_CONTROL:-}" ]; then
		control "$KAFKAD_CONTROL" "topic create $1 $2 1" > /dev/null
		return
	fi
	produce_manifest full_refresh "topic_config: {auto_create: true, partitions: $2}" > /dev/null
	sed -i "s/topic: .*/topic: $1/" m.yaml
	stream 0 | dpone-produce -q m.yaml > /dev/null
}

# produce_manifest STRATEGY-MODE [SINK-OPTIONS-YAML] [STRATEGY-EXTRA]: ./m.yaml
# publishing to $TOPIC, keyed on id.
produce_manifest() {
	local options=
	case $1 in incremental_*) options="incremental_column: updated_at" ;; esac
	cat > m.yaml <<YAML
name: produce_test
source:
  type: mssql
  connection_id: mssql_dwh
  table: {name: orders}
  options: {$options}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: $TOPIC
  strategy: {mode: $1, unique_key: [id]${3:+, $3}}
  options: {${2:-}}
YAML
}

# stream N [FIRST]: a dpone stream of N rows with ids FIRST.. (default 1).
stream() {
	awk -v n="$1" -v first="${2:-1}" 'BEGIN {
		print "[\"header\",{\"protocol\":1,\"run_id\":\"run-7\",\"job\":\"produce_test\"," \
		      "\"source\":{\"type\":\"mssql\",\"database\":\"dwh\",\"schema\":\"dbo\",\"table\":\"orders\"}," \
		      "\"columns\":[{\"name\":\"id\",\"sql_type\":\"int\",\"logical_type\":\"integer\",\"nullable\":false}," \
		      "{\"name\":\"name\",\"sql_type\":\"nvarchar(20)\",\"logical_type\":\"string\",\"nullable\":true}," \
		      "{\"name\":\"updated_at\",\"sql_type\":\"datetime2(7)\",\"logical_type\":\"timestamp\",\"nullable\":false}]," \
		      "\"key\":[\"id\"],\"boundary\":{\"kind\":\"incremental\",\"column\":\"updated_at\"}," \
		      "\"encoding\":{\"bigint\":\"number\",\"binary\":\"base64\"}}]"
		for (i = first; i < first + n; i++)
			printf "{\"id\":%d,\"name\":\"n%d\",\"updated_at\":\"2026-11-26T08:00:%02d.123456%d\"}\n", i, i, i % 60, i % 10
		printf "[\"end\",{\"rows\":%d}]\n", n
	}'
}

# consume [KCAT-ARGS...]: every message of $TOPIC, one line each.
consume() {
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q "$@"
}

@test "dpone-produce --help prints the usage on stdout and exits 0" {
	run dpone-produce --help
	assert_success
	assert_output_contains "usage: dpone-produce [-hqV]"
}

@test "dpone-produce --version" {
	run dpone-produce --version
	assert_success
	assert_output "dpone-produce 0.1.0"
}

@test "dpone-produce: an unknown option is a usage error" {
	run dpone-produce --bogus m.yaml
	assert_failure 2
	assert_output_contains "dpone-produce: unknown option --bogus"
	assert_output_contains "usage: dpone-produce"
}

@test "dpone-produce: a missing manifest operand is a usage error" {
	run dpone-produce
	assert_failure 2
	assert_output_contains "dpone-produce: missing MANIFEST"
}

@test "dpone-produce: a bad manifest exits 2 with file:line:col" {
	write_manifest
	sed -i 's/^  topic: dwh.orders/  topik: dwh.orders/' m.yaml
	run dpone-produce m.yaml
	assert_failure 2
	assert_output "dpone-produce: m.yaml:10:3: sink.topik: unknown key (did you mean 'topic'?)"
}

@test "dpone-produce --print-manifest prints the resolved manifest" {
	write_manifest
	use_env_connections "Pl4nted-produce-$$"
	run dpone-produce --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.password)" = "***" ]
	refute_output_contains "Pl4nted-produce-$$"
}

@test "dpone-produce: the sink connection must be a kafka one" {
	write_manifest
	use_env_connections
	export DPONE_CONN_KAFKA_CLUSTER="mssql://u:p@h/d"
	run dpone-produce m.yaml < /dev/null
	assert_failure 2
	assert_output_contains "is a mssql connection, but a kafka one is needed here"
}

@test "flat: every row is published byte for byte, keyed on the unique key, summary on stdout" {
	make_topic "$TOPIC" 3
	produce_manifest full_refresh
	stream 50 > in.ndjson
	run dpone-produce -q m.yaml < in.ndjson
	assert_success
	assert_line_count 3
	[ "$(sed -n 1p <<< "$output")" = "$(head -n 1 in.ndjson)" ] || flunk "header not passed through"
	[ "$(sed -n 3p <<< "$output")" = "$(tail -n 1 in.ndjson)" ] || flunk "end not passed through last"
	sed -n 2p <<< "$output" | jq -e '.[0] == "delivery" and .[1].delivered == 50 and .[1].failed == 0
		and .[1].rows == 50 and .[1].messages == 50 and ([.[1].partitions[].messages] | add) == 50
		and .[1].topic_appended == 50' > /dev/null \
		|| flunk "summary: $(sed -n 2p <<< "$output")"
	consume -f '%s\n' | sort > got.txt
	sed '1d;$d' in.ndjson | sort | cmp - got.txt
	consume -f '%k\n' | sort -u > keys.txt
	grep -qx '{"id":1}' keys.txt || flunk "keys: $(head -n 3 keys.txt)"
	[ "$(wc -l < keys.txt)" -eq 50 ]
}

@test "headers: run id, source table, the row's watermark as dpone_headers asks, and the manifest's static headers" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh 'headers: {team: dwh, version: 3}, dpone_headers: [run_id, source, watermark]'
	stream 2 | dpone-produce -q m.yaml > /dev/null
	run consume -f '%h\n'
	assert_success
	assert_output "dpone.run_id=run-7,dpone.source=dwh.dbo.orders,team=dwh,version=3,dpone.watermark=2026-11-26T08:00:01.1234561
dpone.run_id=run-7,dpone.source=dwh.dbo.orders,team=dwh,version=3,dpone.watermark=2026-11-26T08:00:02.1234562"
	# The default: none (each costs CPU per message; dpone-produce(1), Headers).
	produce_manifest full_refresh
	stream 1 | dpone-produce -q m.yaml > /dev/null
	run consume -o 2 -f '[%h]\n'
	assert_output "[]"
	produce_manifest full_refresh 'dpone_headers: [run_id]'
	stream 1 | dpone-produce -q m.yaml > /dev/null
	run consume -o 3 -f '%h\n'
	assert_output "dpone.run_id=run-7"
	produce_manifest full_refresh 'dpone_headers: [run_id, lsn]'
	run dpone-produce -q m.yaml < <(stream 1)
	assert_failure 2
	assert_output_contains "sink.options.dpone_headers[1]: 'lsn' is not one of run_id, source, watermark, change"
}

@test "keys: bare value of a one-column key, key.fields, hash_row (SHA-256 of the row line) and null" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh 'key: {format: value}'
	stream 2 | dpone-produce -q m.yaml > /dev/null
	run consume -f '%k\n'
	assert_output "1
2"
	produce_manifest full_refresh 'key: {fields: [name, id]}'
	stream 1 | dpone-produce -q m.yaml > /dev/null
	run consume -o 2 -f '%k\n'
	assert_output '{"name":"n1","id":1}'
	produce_manifest full_refresh 'key: {mode: hash_row}'
	stream 1 | dpone-produce -q m.yaml > /dev/null
	row=$(stream 1 | sed -n 2p)
	run consume -o 3 -f '%k\n'
	assert_output "$(printf '%s' "$row" | sha256sum | cut -d' ' -f1)"
	produce_manifest full_refresh 'key: {mode: "null"}'
	stream 1 | dpone-produce -q m.yaml > /dev/null
	run consume -o 4 -f '%K\n'
	assert_output "-1"
}

@test "no key named: the header's primary key keys the messages; a table without one is unkeyed, said on stderr" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh
	sed -i 's/, unique_key: \[id\]//' m.yaml
	run dpone-plan --get sink.options.key.mode m.yaml
	assert_output primary_key
	run dpone-produce -q m.yaml < <(stream 2)
	assert_success
	refute_output_contains "no primary key"
	run consume -f '%k\n'
	assert_output '{"id":1}
{"id":2}'
	# The same stream from a table without a primary key.
	stream 1 | sed '1s/"key":\["id"\]/"key":[]/' > nokey.ndjson
	run dpone-produce -q m.yaml < nokey.ndjson
	assert_success
	assert_output_contains "the table has no primary key and the manifest names no key: messages are unkeyed"
	run consume -o 2 -f '%K\n'
	assert_output "-1"
	# Unkeyed on purpose: no warning.
	produce_manifest full_refresh 'key: {mode: "null"}'
	sed -i 's/, unique_key: \[id\]//' m.yaml
	run dpone-produce -q m.yaml < nokey.ndjson
	assert_success
	refute_output_contains "no primary key"
	# A tombstone needs a key the table does not have.
	produce_manifest full_refresh 'deletes: {enabled: true, tombstone: true}'
	sed -i 's/, unique_key: \[id\]//' m.yaml
	run dpone-produce -q m.yaml < nokey.ndjson
	assert_failure 2
	assert_output_contains "a tombstone deletes a key, and the table has no primary key"
}

@test "keyless messages are spread one by one with sticky.partitioning.linger.ms 0 (dpone-produce(1), Keys)" {
	make_topic "$TOPIC" 3
	produce_manifest full_refresh 'key: {mode: "null"}, properties: {sticky.partitioning.linger.ms: 0}'
	stream 300 | dpone-produce -q m.yaml > /dev/null
	run consume -f '%p\n'
	[ "${#lines[@]}" -eq 300 ] || flunk "${#lines[@]} messages"
	# 300 messages at random over 3 partitions miss one with probability 3 * (2/3)^300.
	[ "$(printf '%s\n' "$output" | sort -u | wc -l)" -eq 3 ] || flunk "$(printf '%s\n' "$output" | sort | uniq -c)"
}

@test "hash_row keys are SHA-256 across block boundaries (rows of 35 to 137 bytes)" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh 'key: {mode: hash_row}'
	{
		stream 0 | sed '$d'
		for n in $(seq 0 100); do
			printf '{"id":%d,"name":"%s","updated_at":"x"}\n' "$n" "$(head -c "$n" /dev/zero | tr '\0' a)"
		done
		echo '["end",{"rows":101}]'
	} > in.ndjson
	dpone-produce -q m.yaml < in.ndjson > /dev/null
	consume -f '%k\n' > got.txt
	sed '1d;$d' in.ndjson | while IFS= read -r row; do
		printf '%s' "$row" | sha256sum | cut -d' ' -f1
	done > want.txt
	cmp want.txt got.txt
}

@test "keys land on the partition Java clients compute (murmur2, toPositive, modulo)" {
	make_topic "$TOPIC" 7
	produce_manifest full_refresh 'key: {format: value}'
	stream 300 | dpone-produce -q m.yaml > /dev/null
	consume -f '%k %p\n' | sort > got.txt
	seq 1 300 | python3 "$BATS_TEST_DIRNAME/fixtures/murmur2.py" 7 | sort > want.txt
	cmp want.txt got.txt || flunk "$(diff want.txt got.txt | head)"
	[ "$(cut -d' ' -f2 got.txt | sort -u | wc -l)" -eq 7 ]
	python3 "$BATS_TEST_DIRNAME/fixtures/murmur2.py" --self-test
}

@test "debezium envelope: before/after/op/source/ts_ms, deletes as op d plus a tombstone" {
	make_topic "$TOPIC" 1
	produce_manifest incremental_merge 'envelope: debezium, deletes: {enabled: true, tombstone: true}'
	{ stream 1 | sed '$d'; echo '["delete",{"id":9},{"before":{"id":9,"name":"gone","updated_at":"2026-01-01T00:00:00.0000000"}}]'
	  echo '["end",{"rows":1,"deletes":1}]'; } | dpone-produce -q m.yaml > /dev/null
	consume -Z -f '%k\t%s\n' > got.txt
	[ "$(wc -l < got.txt)" -eq 3 ] || flunk "$(cat got.txt)"
	sed -n 1p got.txt | cut -f2 | jq -e '.before == null and .after.id == 1 and .op == "u"
		and .source.table == "orders" and .source.connector == "dpone" and .source.run_id == "run-7"
		and (.ts_ms | type) == "number"' > /dev/null || flunk "$(sed -n 1p got.txt)"
	sed -n 2p got.txt | cut -f2 | jq -e '.op == "d" and .after == null and .before.name == "gone"' > /dev/null \
		|| flunk "$(sed -n 2p got.txt)"
	[ "$(sed -n 3p got.txt)" = '{"id":9}	NULL' ] || flunk "tombstone: $(sed -n 3p got.txt)"
}

@test "debezium op for rows follows the strategy: r for a full refresh, c for incremental_append" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh 'envelope: debezium'
	stream 1 | dpone-produce -q m.yaml > /dev/null
	produce_manifest incremental_append 'envelope: debezium'
	stream 1 | dpone-produce -q m.yaml > /dev/null
	run consume -f '%s\n'
	[ "$(jq -r .op <<< "$output" | tr -d '\n')" = rc ] || flunk "$output"
	jq -s -e '.[0].source.snapshot == "true" and .[1].source.snapshot == "false"' <<< "$output" > /dev/null
}

@test "dpone envelope (the Python dpone's op/data/metadata/source/schema_version)" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh 'envelope: dpone'
	stream 1 | dpone-produce -q m.yaml > /dev/null
	run consume -f '%s\n'
	jq -e '.op == "upsert" and .data == {"id":1,"name":"n1","updated_at":"2026-11-26T08:00:01.1234561"}
		and .metadata.run_id == "run-7" and .source.table == "orders" and .schema_version == 1' <<< "$output" > /dev/null \
		|| flunk "$output"
	# always_envelope: true means the same with envelope flat.
	produce_manifest full_refresh 'always_envelope: true'
	stream 1 | dpone-produce -q m.yaml > /dev/null
	run consume -o 1 -f '%s\n'
	jq -e '.op == "upsert" and .data.id == 1' <<< "$output" > /dev/null || flunk "$output"
}

# deletes_stream: one row, then a delete of id 9 with its before image.
deletes_stream() {
	stream 1 | sed '$d'
	echo '["delete",{"id":9},{"before":{"id":9,"name":"gone","updated_at":"2026-01-01T00:00:00.0000000"}}]'
	echo '["end",{"rows":1,"deletes":1}]'
}

@test "flat deletes: tombstone only, op_field events, or Debezium's __deleted rewrite" {
	make_topic "$TOPIC" 1
	produce_manifest incremental_merge 'deletes: {enabled: true, tombstone: true}'
	deletes_stream | dpone-produce -q m.yaml > /dev/null
	run consume -Z -f '%k %s\n'
	assert_output '{"id":1} {"id":1,"name":"n1","updated_at":"2026-11-26T08:00:01.1234561"}
{"id":9} NULL'
	produce_manifest incremental_merge 'deletes: {enabled: true, op_field: _op}'
	deletes_stream | dpone-produce -q m.yaml > /dev/null
	run consume -o 2 -Z -f '%s\n'
	assert_output '{"id":1,"name":"n1","updated_at":"2026-11-26T08:00:01.1234561","_op":"upsert"}
{"id":9,"_op":"delete"}'
	produce_manifest incremental_merge 'deletes: {enabled: true, rewrite: true, tombstone: true}'
	deletes_stream | dpone-produce -q m.yaml > /dev/null
	run consume -o 4 -Z -f '%s\n'
	assert_output '{"id":1,"name":"n1","updated_at":"2026-11-26T08:00:01.1234561","__deleted":"false"}
{"id":9,"name":"gone","updated_at":"2026-01-01T00:00:00.0000000","__deleted":"true"}
NULL'
}

@test "a delete while deletes are disabled fails the run instead of being dropped" {
	make_topic "$TOPIC" 1
	produce_manifest incremental_merge
	run dpone-produce -q m.yaml < <(deletes_stream)
	assert_failure 3
	assert_output_contains "stdin:3: a delete message, but sink.options.deletes.enabled is false"
	refute_output_contains '["end"'
}

@test "duplicate_policy fail names the key and both lines and publishes nothing" {
	make_topic "$TOPIC" 1
	produce_manifest incremental_merge
	{ stream 3 | sed '$d'; stream 1 2 | sed '1d;$d'; echo '["end",{"rows":4}]'; } > in.ndjson
	run dpone-produce -q m.yaml < in.ndjson
	assert_failure 8
	assert_output "dpone-produce: stdin:5: duplicate key [2] (unique_key id), first seen on line 3 (duplicate_policy: fail; nothing was published)"
	run consume
	assert_output ""
}

@test "duplicate_policy keep_last and keep_first publish one message per key" {
	make_topic "$TOPIC" 1
	{ stream 3 | sed '$d'; stream 1 2 | sed '1d;$d' | sed 's/"n2"/"newer"/'; echo '["end",{"rows":4}]'; } > in.ndjson
	produce_manifest incremental_merge "" "duplicate_policy: keep_last"
	run dpone-produce -q m.yaml < in.ndjson
	assert_success
	sed -n 2p <<< "$output" | jq -e '.[1].duplicates_dropped == 1 and .[1].delivered == 3' > /dev/null || flunk "$output"
	run consume -f '%s\n'
	assert_output '{"id":1,"name":"n1","updated_at":"2026-11-26T08:00:01.1234561"}
{"id":3,"name":"n3","updated_at":"2026-11-26T08:00:03.1234563"}
{"id":2,"name":"newer","updated_at":"2026-11-26T08:00:02.1234562"}'
	produce_manifest incremental_merge "" "duplicate_policy: keep_first"
	dpone-produce -q m.yaml < in.ndjson > /dev/null
	run consume -o 3 -f '%s\n'
	assert_output '{"id":1,"name":"n1","updated_at":"2026-11-26T08:00:01.1234561"}
{"id":2,"name":"n2","updated_at":"2026-11-26T08:00:02.1234562"}
{"id":3,"name":"n3","updated_at":"2026-11-26T08:00:03.1234563"}'
}

@test "a missing topic is an error before anything is sent; it is not created" {
	use_fault_stand_ins
	# The mock cluster creates any topic a client asks about; a broker
	# without auto-creation answers UNKNOWN_TOPIC_OR_PART, as set here.
	control "$KAFKAD_CONTROL" "topic error $TOPIC UNKNOWN_TOPIC_OR_PART" > /dev/null
	produce_manifest full_refresh
	run dpone-produce -q m.yaml < <(stream 3)
	assert_failure 5
	assert_output_contains "dpone-produce: topic $TOPIC does not exist (create it, or set sink.options.topic_config.auto_create: true); nothing was sent"
	refute_output_contains '["delivery"'
}

@test "bad stream lines exit 3 naming the line; the summary has no end" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh
	run dpone-produce -q m.yaml < <(stream 3 | sed '3s/.*/{"id":2,/')
	assert_failure 3
	assert_output_contains "dpone-produce: stdin:3:"
	refute_output_contains '["end"'
	run dpone-produce -q m.yaml < <(stream 3 | sed '$d')
	assert_failure 3
	assert_output_contains "stream is truncated: no end message after 3 rows"
}

@test "a full local queue is backpressure: every message is delivered, none dropped" {
	make_topic "$TOPIC" 2
	produce_manifest full_refresh 'delivery: {queue_buffering_max_messages: 5, linger_ms: 0}'
	run dpone-produce -q m.yaml < <(stream 3000)
	assert_success
	[ "$(consume -f '%k\n' | sort -u | wc -l)" -eq 3000 ]
}

@test "compression, linger and librdkafka properties from the manifest are applied" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh 'delivery: {compression_type: zstd, linger_ms: 5, batch_num_messages: 100}, properties: {"message.max.bytes": 2000000}'
	run dpone-produce -q m.yaml < <(stream 500)
	assert_success
	[ "$(consume -f '%s\n' | wc -l)" -eq 500 ]
	produce_manifest full_refresh 'properties: {"no.such.property": 1}'
	run dpone-produce -q m.yaml < <(stream 1)
	assert_failure 2
	assert_output_contains 'sink.options.properties: Kafka property no.such.property: No such configuration property: "no.such.property"'
}

@test "--dry-run builds every message and needs no broker" {
	produce_manifest full_refresh
	export DPONE_CONN_KAFKA_CLUSTER=kafka://127.0.0.1:9
	run dpone-produce -q --dry-run m.yaml < <(stream 10)
	assert_success
	sed -n 2p <<< "$output" | jq -e '.[1].messages == 10' > /dev/null || flunk "$output"
}

@test "exactly_once: one transaction per run, visible to read_committed consumers" {
	make_topic "$TOPIC" 2
	produce_manifest full_refresh 'delivery: {mode: exactly_once}'
	run dpone-produce -q m.yaml < <(stream 200)
	assert_success
	sed -n 2p <<< "$output" | jq -e '.[1].transaction == "committed"' > /dev/null || flunk "$output"
	[ "$(consume -X isolation.level=read_committed -f '%s\n' | wc -l)" -eq 200 ]
}

@test "--commit-record: the summary, written once the run is delivered (committed); none for a failed run" {
	make_topic "$TOPIC" 2
	for mode in at_least_once exactly_once; do
		produce_manifest full_refresh "delivery: {mode: $mode}"
		rm -f record.ndjson
		dpone-produce -q m.yaml --commit-record record.ndjson < <(stream 50) > out.ndjson
		cmp record.ndjson out.ndjson || flunk "$mode: the record is not what went to stdout"
		tail -n 1 record.ndjson | grep -q '^\["end",' || flunk "$mode: $(cat record.ndjson)"
		grep '^\["delivery"' record.ndjson | jq -e '.[1].delivered == 50' > /dev/null
		[ ! -e record.ndjson.tmp ] && [ ! -e record.ndjson.prepared ]
		# truncated input, a failed run: no record
		rm -f record.ndjson
		run dpone-produce -q m.yaml --commit-record record.ndjson < <(stream 50 | sed '$d')
		assert_failure 3
		[ ! -e record.ndjson ] || flunk "$mode: a failed run left a commit record"
		[ ! -e record.ndjson.prepared ] || flunk "$mode: a failed run left a prepared record"
	done
	# checks that failed: no record either
	run dpone-produce -q m.yaml --commit-record record.ndjson < <(stream 5 | sed '$i ["checks",{"passed":false}]')
	assert_failure 8
	[ ! -e record.ndjson ]
	# a record that cannot be written is said, and the run still ends
	run dpone-produce -q m.yaml --commit-record no/such/dir/record.ndjson < <(stream 5)
	assert_success
	assert_output_contains "--commit-record no/such/dir/record.ndjson.prepared: No such file or directory"
	assert_output_contains '["end",'
}

@test "exactly_once: a truncated stream aborts the transaction; read_committed consumers see nothing" {
	make_topic "$TOPIC" 2
	produce_manifest full_refresh 'delivery: {mode: exactly_once}'
	run dpone-produce -q m.yaml < <(stream 200 | sed '$d')
	assert_failure 3
	assert_output_contains "transaction aborted"
	grep '^\["delivery"' <<< "$output" | jq -e '.[1].transaction == "aborted"' > /dev/null || flunk "$output"
	refute_output_contains '["end"'
	# The mock cluster ignores isolation levels (see the SIGTERM test below).
	if [ -z "${KAFKAD_CONTROL:-}" ]; then
		[ "$(consume -X isolation.level=read_committed -f '%s\n' | wc -l)" -eq 0 ]
	fi
	# The next complete run commits normally.
	run dpone-produce -q m.yaml < <(stream 5)
	assert_success
	sed -n 2p <<< "$output" | jq -e '.[1].transaction == "committed" and .[1].delivered == 5' > /dev/null || flunk "$output"
}

# start_slow_produce N: dpone-produce reading N rows from a FIFO that stays
# open, in the background ($PRODUCE_PID); the FIFO's writer is fd 7 (bats
# owns fd 3).
start_slow_produce() {
	mkfifo in.fifo
	dpone-produce m.yaml < in.fifo > out.txt 2> err.txt &
	PRODUCE_PID=$!
	exec 7> in.fifo
	stream "$1" | sed '$d' >&7
}

# terminate_slow_produce N: SIGTERM to dpone-produce after N rows of a
# stream that never ends; it must exit 130.
terminate_slow_produce() {
	start_slow_produce "$1"
	sleep 1
	kill -TERM "$PRODUCE_PID"
	rc=0
	wait "$PRODUCE_PID" || rc=$?
	exec 7>&-
	[ "$rc" -eq 130 ] || flunk "exit $rc: $(cat err.txt)"
}

@test "SIGTERM mid-run with exactly_once: the transaction is aborted, exit 130, no end" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh 'delivery: {mode: exactly_once}'
	terminate_slow_produce 100
	grep -q "interrupted" err.txt || flunk "$(cat err.txt)"
	grep -q "transaction aborted" err.txt || flunk "$(cat err.txt)"
	if grep -q '\["end"' out.txt; then flunk "$(cat out.txt)"; fi
	grep '^\["delivery"' out.txt | jq -e '.[1].transaction == "aborted"' > /dev/null || flunk "$(cat out.txt)"
	# librdkafka 2.0.2's mock cluster serves aborted records to read_committed
	# consumers (it writes no abort markers), so what such a consumer sees
	# after an abort is checked on a real cluster only; see tests/README.md.
	if [ -z "${KAFKAD_CONTROL:-}" ]; then
		[ "$(consume -X isolation.level=read_committed -f '%s\n' | wc -l)" -eq 0 ]
	fi
	# The same transactional id commits the next run.
	run dpone-produce -q m.yaml < <(stream 5)
	assert_success
	sed -n 2p <<< "$output" | jq -e '.[1].transaction == "committed"' > /dev/null || flunk "$output"
}

@test "SIGTERM mid-run with at_least_once: what was sent is drained and reported, exit 130" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh
	terminate_slow_produce 100
	if grep -q '\["end"' out.txt; then flunk "$(cat out.txt)"; fi
	# Whatever was read before the signal was drained and reported.
	delivered=$(grep '^\["delivery"' out.txt | jq '.[1].delivered')
	grep -q '"failed":0' out.txt || flunk "$(cat out.txt)"
	[ "$(consume -f '%s\n' | wc -l)" -eq "$delivered" ]
}

# outage_mid_run N: N rows in, then every broker down, then N more rows and
# the stream's end; dpone-produce ($PRODUCE_PID) is left running.
outage_mid_run() {
	start_slow_produce "$1"
	sleep 0.5
	control "$KAFKAD_CONTROL" "broker down -1" > /dev/null
	stream "$1" $(($1 + 1)) | sed '1d;$d' >&7
	printf '["end",{"rows":%d}]\n' $(($1 * 2)) >&7
	exec 7>&-
}

@test "broker down mid-run: at_least_once delivers everything once the brokers are back" {
	use_fault_stand_ins
	make_topic "$TOPIC" 3
	produce_manifest full_refresh 'delivery: {linger_ms: 50}'
	outage_mid_run 2000
	sleep 2
	control "$KAFKAD_CONTROL" "broker up -1" > /dev/null
	rc=0
	wait "$PRODUCE_PID" || rc=$?
	[ "$rc" -eq 0 ] || flunk "exit $rc: $(cat err.txt)"
	grep -q '"delivered":4000,"failed":0' out.txt || flunk "$(cat out.txt)"
	[ "$(consume -f '%k\n' | sort -u | wc -l)" -eq 4000 ]
}

@test "broker down for good: exit 5, and only what reached the topic is reported delivered" {
	use_fault_stand_ins
	make_topic "$TOPIC" 1
	produce_manifest full_refresh 'delivery: {message_timeout_ms: 1500, linger_ms: 0}'
	outage_mid_run 300
	rc=0
	wait "$PRODUCE_PID" || rc=$?
	control "$KAFKAD_CONTROL" "broker up -1" > /dev/null
	[ "$rc" -eq 5 ] || flunk "exit $rc: $(cat err.txt)"
	grep -q "was not delivered" err.txt || flunk "$(cat err.txt)"
	if grep -q '\["end"' out.txt; then flunk "$(cat out.txt)"; fi
	delivered=$(grep '^\["delivery"' out.txt | jq '.[1].delivered')
	failed=$(grep '^\["delivery"' out.txt | jq '.[1].failed')
	[ "$((delivered + failed))" -eq 600 ] || flunk "$(cat out.txt)"
	[ "$failed" -gt 0 ]
	[ "$(consume -f '%s\n' | wc -l)" -eq "$delivered" ]
}

@test "injected produce errors: retriable ones are retried, a permanent one fails the run with exit 5" {
	use_fault_stand_ins
	make_topic "$TOPIC" 1
	produce_manifest full_refresh 'delivery: {mode: idempotent}'
	control "$KAFKAD_CONTROL" "errors produce NOT_ENOUGH_REPLICAS NOT_ENOUGH_REPLICAS LEADER_NOT_AVAILABLE" > /dev/null
	run dpone-produce -q m.yaml < <(stream 100)
	assert_success
	[ "$(consume -f '%s\n' | wc -l)" -eq 100 ]
	produce_manifest full_refresh
	control "$KAFKAD_CONTROL" "errors produce INVALID_RECORD" > /dev/null
	run dpone-produce -q m.yaml < <(stream 10 101)
	assert_failure 5
	assert_output_contains "was not delivered: Broker: Broker failed to validate record"
	refute_output_contains '["end"'
	delivered=$(grep '^\["delivery"' <<< "$output" | jq '.[1].delivered')
	[ "$(consume -f '%s\n' | wc -l)" -eq "$((100 + delivered))" ]
}

@test "a message over max_message_bytes fails the run with exit 5 naming the line; no end" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh "delivery: {max_message_bytes: 100000}"
	{
		stream 2 | sed '$d'
		printf '{"id":3,"name":"%s","updated_at":"2026-11-26T08:00:03.1234567"}\n' "$(head -c 150000 /dev/zero | tr '\0' x)"
		echo '["end",{"rows":3}]'
	} > in.ndjson
	run dpone-produce -q m.yaml < in.ndjson
	assert_failure 5
	assert_output_contains "stdin line 4: a message of 150061 bytes is more than sink.options.delivery.max_message_bytes allows"
	refute_output_contains '["end"'
}

@test "--dry-run refuses a message over max_message_bytes as a real run does, to the byte" {
	make_topic "$TOPIC" 1
	# name_len makes the message (value, key and headers) this many bytes
	# over or under the limit as librdkafka counts it; found by a real run.
	produce_manifest full_refresh "delivery: {max_message_bytes: 2000}"
	row() {
		printf '%s\n' "$(stream 1 | sed -n 1p)"
		printf '{"id":1,"name":"%s","updated_at":"2026-11-26T08:00:01.1234567"}\n' "$(head -c "$1" /dev/zero | tr '\0' x)"
		echo '["end",{"rows":1}]'
	}
	# The largest name a real run accepts, by bisection: lo fits, hi does not.
	lo=100 hi=2000
	while [ $((hi - lo)) -gt 1 ]; do
		mid=$(((lo + hi) / 2))
		if row "$mid" | dpone-produce -q m.yaml > /dev/null 2>&1; then lo=$mid; else hi=$mid; fi
	done
	n=$lo
	row "$n" > fits.ndjson
	row $((n + 1)) > over.ndjson
	run dpone-produce -q --dry-run m.yaml < fits.ndjson
	assert_success
	run dpone-produce -q --dry-run m.yaml < over.ndjson
	assert_failure 5
	assert_output_contains "stdin line 2: a message of"
	assert_output_contains "is more than sink.options.delivery.max_message_bytes allows"
}

@test "equal numeric keys written two ways are one key: the same bytes, the same partition, one for unique" {
	make_topic "$TOPIC" 6
	produce_manifest full_refresh
	{
		stream 1 | sed -n 1p
		for id in 0 -0 0.0 7 7.0 7e0 70e-1 1.5 1.50 15e-1; do
			printf '{"id":%s,"name":"n","updated_at":"2026-11-26T08:00:01.1234567"}\n' "$id"
		done
		echo '["end",{"rows":10}]'
	} > in.ndjson
	run dpone-produce -q m.yaml < in.ndjson
	assert_success
	consume -f '%k %p\n' > got.txt
	[ "$(wc -l < got.txt)" -eq 10 ] || flunk "$(cat got.txt)"
	[ "$(sort -u got.txt | wc -l)" -eq 3 ] || flunk "keys and partitions: $(sort -u got.txt)"
	sort -u got.txt | cut -d' ' -f1 | tr '\n' ' ' > keys.txt
	[ "$(cat keys.txt)" = '{"id":0} {"id":1.5} {"id":7} ' ] || flunk "$(cat keys.txt)"
	# The check stage's unique sees them as the keys they are.
	printf 'quality:\n  checks:\n    - {type: unique, columns: [id]}\n' >> m.yaml
	run dpone-check m.yaml < in.ndjson
	assert_output_contains "unique check failed"
	assert_output_contains "7 duplicate keys"
}

# as_user CMD...: CMD as another user than the test's when it runs as root
# (root may read any process's /proc files), else as the test's user.
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u nobody -- "$@"
	else
		"$@"
	fi
}

@test "a stage holding a password keeps its environment from the user's other processes; DPONE_CORE_DUMPS=1 lets it" {
	produce_manifest full_refresh
	chmod 755 "$TEST_TMP"
	chmod 644 m.yaml
	for dumps in 0 1; do
		mkfifo "in$dumps"
		chmod 666 "in$dumps"
		as_user env DPONE_CORE_DUMPS=$dumps DPONE_CONN_KAFKA_CLUSTER="$DPONE_CONN_KAFKA_CLUSTER" \
			dpone-produce -q --dry-run m.yaml < "in$dumps" > /dev/null 2>&1 &
		pid=$!
		exec 7> "in$dumps" # the stage now waits for its stream, password resolved
		for _ in $(seq 1 100); do
			pgrep -f "dpone-produce -q --dry-run m.yaml" > /dev/null && break
			sleep 0.05
		done
		stage=$(pgrep -n -f "dpone-produce -q --dry-run m.yaml")
		sleep 0.3
		if [ "$dumps" = 0 ]; then
			run as_user cat "/proc/$stage/environ"
			assert_failure
			assert_output_contains "Permission denied"
		else
			run as_user cat "/proc/$stage/environ"
			assert_success
		fi
		exec 7>&-
		wait "$pid" || true
	done
}

@test "a stream from another job, table or strategy is refused before anything is sent, unless --force" {
	make_topic "$TOPIC" 1
	produce_manifest full_refresh
	stream 2 > in.ndjson
	sed 's/^name: produce_test/name: other_job/' m.yaml > job.yaml
	run dpone-produce -q job.yaml < in.ndjson
	assert_failure 2
	assert_output_contains "stdin:1: the stream is from job produce_test (dbo.orders, strategy ?) and the manifest is job other_job (dbo.orders, strategy full_refresh): the job differs, so it is not published here (--force publishes it anyway)"
	sed 's/table: {name: orders}/table: {name: customers}/' m.yaml > table.yaml
	run dpone-produce -q table.yaml < in.ndjson
	assert_failure 2
	assert_output_contains "the table differs"
	sed '1s/"job":"produce_test",/"job":"produce_test","strategy":"incremental_merge",/' in.ndjson > merge.ndjson
	run dpone-produce -q m.yaml < merge.ndjson
	assert_failure 2
	assert_output_contains "the strategy differs"
	run consume -f '%k\n'
	assert_output ""
	# Table names compare as SQL Server compares them; --force publishes anyway.
	sed 's/table: {name: orders}/table: {name: ORDERS}/' m.yaml > upper.yaml
	run dpone-produce -q upper.yaml < in.ndjson
	assert_success
	run dpone-produce -q --force job.yaml < in.ndjson
	assert_success
	[ "$(consume -f '%k\n' | wc -l)" -eq 4 ]
}
