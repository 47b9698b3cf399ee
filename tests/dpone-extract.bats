#!/usr/bin/env bats
# dpone-extract: options, manifest handling and exit codes.

load test_helper
load stand_ins

# The main server: a real one when DPONE_TEST_MSSQL_URL names it; faults
# need the stand-in's control port: always a private stand-in.
stand_ins_per_file mssql --faults mssql

setup() {
	common_setup
	load_env
	T="x$BATS_TEST_NUMBER"
	export DPONE_CONN_KAFKA_CLUSTER=kafka://127.0.0.1:9
}

# extract_manifest TABLE MODE [OPTIONS-YAML]: ./m.yaml reading TABLE.
extract_manifest() {
	cat > m.yaml <<YAML
name: extract_test
source:
  type: mssql
  connection_id: mssql_dwh
  table: {name: "$1"}
  options: {${3:-}}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: t
  strategy: {mode: $2${4:+, unique_key: $4}}
YAML
}

orders_table() {
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, v nvarchar(20), updated_at datetime2(7) NOT NULL, rv rowversion)
INSERT INTO $T (id, v, updated_at) VALUES (1, N'a', '2026-01-01 00:00:00.0000001'), (2, N'b', '2026-01-01 00:00:00.0000002'),
  (3, N'c', '2026-01-02 00:00:00'), (4, N'd', '2026-01-03 00:00:00'), (5, N'e', '2026-01-03 00:00:00.9999999')
SQL
}

ids() {
	grep -o '"id":[0-9]*' | cut -d: -f2 | tr '\n' ' '
}
export -f ids

@test "dpone-extract --help prints the usage on stdout and exits 0" {
	run dpone-extract --help
	assert_success
	assert_output_contains "usage: dpone-extract [-hqV]"
}

@test "dpone-extract --version" {
	run dpone-extract --version
	assert_success
	assert_output "dpone-extract 0.1.0"
}

@test "dpone-extract: an unknown option is a usage error" {
	run dpone-extract --bogus m.yaml
	assert_failure 2
	assert_output_contains "dpone-extract: unknown option --bogus"
	assert_output_contains "usage: dpone-extract"
}

@test "dpone-extract: a missing manifest operand is a usage error" {
	run dpone-extract
	assert_failure 2
	assert_output_contains "dpone-extract: missing MANIFEST"
}

@test "dpone-extract: a bad manifest exits 2 with file:line:col" {
	write_manifest
	sed -i 's/^  topic: dwh.orders/  topik: dwh.orders/' m.yaml
	run dpone-extract m.yaml
	assert_failure 2
	assert_output "dpone-extract: m.yaml:10:3: sink.topik: unknown key (did you mean 'topic'?)"
}

@test "dpone-extract --print-manifest prints the resolved manifest" {
	write_manifest
	use_env_connections "Pl4nted-extract-$$"
	run dpone-extract --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.password)" = "***" ]
	refute_output_contains "Pl4nted-extract-$$"
}


@test "every type is encoded as the type matrix says" {
	types_table
	extract_manifest "$T" full_refresh
	run dpone-extract m.yaml
	assert_success
	assert_line 1 '{"id":1,"b":true,"ti":255,"si":-32768,"i":-2147483648,"bi":-9223372036854775808,"d":"-9999999999999999999999999999.9999999999","n":"999.99","m":"-922337203685477.5808","sm":"214748.3647","r":0.1,"f":0.1,"dt":"0001-01-01","tm":"23:59:59.999","sdt":"2079-06-06T23:59:00","dtm":"1753-01-01T00:00:00.003","dt2":"9999-12-31T23:59:59.9999999","dto":"2026-11-26T01:02:03.45-13:45","c":"a    ","vc":"x\"y\\z","nvc":"😀𝄞 é\ttab","vcm":"","bn":"AP8AAA==","vb":"","g":"f3a9ab4f-1234-4e5a-9abc-0123456789ab"}'
	assert_line 2 '{"id":2,"b":false,"ti":0,"si":0,"i":0,"bi":9223372036854775807,"d":"0.0000000001","n":"-0.01","m":"0.0000","sm":"0.0000","r":3.4e+38,"f":1.7976931348623157e+308,"dt":"9999-12-31","tm":"00:00:00.000","sdt":"1900-01-01T00:00:00","dtm":"9999-12-31T23:59:59.997","dt2":"0001-01-01T00:00:00.0000000","dto":"2026-11-26T10:00:00.00+14:00","c":"abcde","vc":"","nvc":"","vcm":"xy","bn":"3q2+7w==","vb":"AQI=","g":"00000000-0000-0000-0000-000000000000"}'
	assert_line 3 '{"id":3,"b":null,"ti":null,"si":null,"i":null,"bi":null,"d":null,"n":null,"m":null,"sm":null,"r":null,"f":null,"dt":null,"tm":null,"sdt":null,"dtm":null,"dt2":null,"dto":null,"c":null,"vc":null,"nvc":null,"vcm":null,"bn":null,"vb":null,"g":null}'
	# Every line is strict JSON (the reader's validator agrees with jansson) ...
	dpone-extract m.yaml | stream-relay > /dev/null
	# ... and decodes to the values that were stored.
	dpone-extract m.yaml > out.ndjson
	run /usr/bin/python3 -c '
import json, sys, decimal
rows = [json.loads(l) for l in open("out.ndjson") if l.startswith("{")]
r = rows[0]
assert decimal.Decimal(r["d"]) == decimal.Decimal("-9999999999999999999999999999.9999999999")
assert r["bi"] == -9223372036854775808 and rows[1]["bi"] == 2**63 - 1
assert r["r"] == 0.1 and rows[1]["f"] == 1.7976931348623157e308
assert r["nvc"] == "\U0001F600\U0001D11E \u00e9\ttab" and r["vc"] == "x\"y\\z"
print("ok")'
	assert_output "ok"
}

@test "the header describes the columns, key and boundary" {
	orders_table
	extract_manifest "$T" full_refresh
	run bash -c 'dpone-extract m.yaml | head -n 1 | jq -c ".[1] | {protocol, job, source, key, boundary, cols: [.columns[] | [.name, .sql_type, .logical_type, .nullable]]}"'
	assert_output '{"protocol":1,"job":"extract_test","source":{"type":"mssql","server":"'"$DPONE_TEST_MSSQL_HOST:$DPONE_TEST_MSSQL_PORT"'","database":"'"$DPONE_TEST_MSSQL_DATABASE"'","schema":"dbo","table":"'$T'"},"key":["id"],"boundary":{"kind":"full"},"cols":[["id","int","integer",false],["v","nvarchar(20)","string",true],["updated_at","datetime2(7)","timestamp",false],["rv","timestamp","binary",false]]}'
}

@test "bigint as string and binary as hex when the manifest asks" {
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (id bigint NOT NULL PRIMARY KEY, b varbinary(4))
INSERT INTO $T VALUES (9007199254740993, 0x0AFF)
SQL
	extract_manifest "$T" full_refresh "bigint_as: string, binary_as: hex"
	run bash -c 'dpone-extract m.yaml | sed -n 2p'
	assert_output '{"id":"9007199254740993","b":"0aff"}'
}

@test "a 5 MB varbinary(max) comes through whole" {
	sql <<< "DROP TABLE IF EXISTS $T; CREATE TABLE $T (id int NOT NULL PRIMARY KEY, blob varbinary(max))"
	py "$T" <<'PY'
cur.execute("INSERT INTO " + sys.argv[1] + " VALUES (1, %s)", (bytes(range(256)) * 20480,))
PY
	extract_manifest "$T" full_refresh
	printf '  options: {delivery: {max_message_bytes: 8000000}}\n' >> m.yaml
	run bash -c "dpone-extract m.yaml | sed -n 2p | jq -r .blob | base64 -d | md5sum"
	[ "$output" = "$(/usr/bin/python3 -c 'import hashlib,sys; sys.stdout.write(hashlib.md5(bytes(range(256))*20480).hexdigest())')  -" ] || flunk "$output"
}

@test "incremental: (low, high] with high read once, ordered by the column and key" {
	orders_table
	extract_manifest "$T" incremental_append "incremental_column: updated_at"
	run bash -c 'dpone-extract m.yaml | ids'
	assert_output "1 2 3 4 5 "
	run bash -c 'dpone-extract --from 2026-01-01T00:00:00.0000001 m.yaml | ids'
	assert_output "2 3 4 5 "
	run bash -c 'dpone-extract --from 2026-01-01T00:00:00.0000001 --to 2026-01-03T00:00:00 m.yaml | ids'
	assert_output "2 3 4 "
	run bash -c 'dpone-extract --from 2026-01-03T00:00:00.9999999 m.yaml | tail -n 1 | jq -c "del(.[1].source)"'
	assert_output '["end",{"rows":0}]'
	run bash -c 'dpone-extract --from 2026-01-01T00:00:00 m.yaml | tail -n 1 | jq -c ".[1].watermark"'
	assert_output '{"column":"updated_at","low":"2026-01-01T00:00:00.0000001","high":"2026-01-03T00:00:00.9999999"}'
}

@test "incremental: rows committed during the run wait for the next run" {
	orders_table
	extract_manifest "$T" incremental_append "incremental_column: updated_at"
	use_fault_stand_ins
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, updated_at datetime2(7) NOT NULL)
INSERT INTO $T VALUES (1, '2026-01-01'), (2, '2026-01-02')
SQL
	control "$MSSQLD_CONTROL" "fault stall-after-rows 1 1500 dbo.$T"
	dpone-extract -q m.yaml > out.ndjson &
	sleep 0.5
	sql <<< "INSERT INTO $T VALUES (3, '2026-01-03')"
	wait $!
	run ids < out.ndjson
	assert_output "1 2 "
	run bash -c 'dpone-extract --from 2026-01-02T00:00:00.0000000 m.yaml | ids'
	assert_output "3 "
}

@test "lookback re-reads a window before the watermark" {
	orders_table
	extract_manifest "$T" incremental_append "incremental_column: updated_at, lookback: 25h"
	run bash -c 'dpone-extract --from 2026-01-03T00:00:00 m.yaml | ids'
	assert_output "3 4 5 "
	extract_manifest "$T" incremental_append "incremental_column: id, lookback: 2"
	run bash -c 'dpone-extract --from 4 m.yaml | ids'
	assert_output "3 4 5 "
	extract_manifest "$T" incremental_append "incremental_column: updated_at, lookback: 3"
	run dpone-extract --from 2026-01-03T00:00:00 m.yaml
	assert_failure 2
	assert_output_contains "source.options.lookback: '3' does not apply to updated_at"
}

@test "a rowversion watermark round-trips from the end message to --from" {
	orders_table
	extract_manifest "$T" incremental_append "incremental_column: rv"
	mid=$(dpone-extract m.yaml | sed -n 3p | jq -r .rv)
	run bash -c "dpone-extract --from '$mid' m.yaml | ids"
	assert_output "3 4 5 "
	hex=0x$(printf '%s' "$mid" | base64 -d | od -An -tx1 | tr -d ' \n')
	run bash -c "dpone-extract --from '$hex' m.yaml | ids"
	assert_output "3 4 5 "
}

@test "replace reads the strategy's window" {
	orders_table
	cat > m.yaml <<YAML
name: extract_test
source: {type: mssql, connection_id: mssql_dwh, table: {name: $T}}
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: t
  strategy: {mode: replace, window: {column: updated_at, from: "2026-01-01T00:00:00.0000002", to: "2026-01-03T00:00:00.9999999"}}
YAML
	run bash -c 'dpone-extract m.yaml | ids'
	assert_output "2 3 4 "
}

@test "columns allow-list and source_custom_predicate" {
	orders_table
	extract_manifest "$T" full_refresh "columns: [v, id], source_custom_predicate: \"[v] <> N'c'\""
	run bash -c 'dpone-extract m.yaml | sed -n "2p;\$p" | sed "s/\"elapsed_ms\":[0-9]*/\"elapsed_ms\":T/"'
	assert_output '{"v":"a","id":1}
["end",{"rows":4,"source":{"elapsed_ms":T}}]'
	run bash -c 'dpone-extract m.yaml | head -n 1 | jq -c .[1].boundary'
	assert_output '{"predicate":"[v] <> N'"'"'c'"'"'","kind":"full"}'
}

@test "--from and --to are refused where there is no incremental boundary" {
	orders_table
	extract_manifest "$T" full_refresh
	run dpone-extract --from 2026-01-01T00:00:00 m.yaml
	assert_failure 2
	assert_output_contains "--from and --to bound an incremental run: strategy full_refresh without source.options.incremental_column reads no incremental boundary"
}

@test "--count gives the rows of the same boundary" {
	orders_table
	extract_manifest "$T" incremental_append "incremental_column: updated_at"
	run dpone-extract --count --from 2026-01-01T00:00:00.0000001 m.yaml
	assert_success
	assert_output "4"
}

@test "--chunk I/N: disjoint chunks whose union is the whole, skewed keys and empty chunks too" {
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (id bigint NOT NULL PRIMARY KEY, v int)
INSERT INTO $T VALUES (1, 1), (2, 2), (3, 3), (1000000, 4), (1000001, 5), (-5, 6), (9000000000, 7)
SQL
	extract_manifest "$T" full_refresh
	dpone-extract m.yaml | ids | tr ' ' '\n' | sed '/^$/d' | sort -n > whole
	for n in 1 2 3 7 20; do
		: > union
		for i in $(seq 1 $n); do
			dpone-extract --chunk "$i/$n" m.yaml > chunk.ndjson
			tail -n 1 chunk.ndjson | grep -q '^\["end",' || flunk "chunk $i/$n has no end"
			ids < chunk.ndjson | tr ' ' '\n' | sed '/^$/d' >> union
		done
		sort -n union > union.sorted
		cmp whole union.sorted || flunk "chunks of $n differ from the whole"
		[ "$(sort -n union | uniq -d)" = "" ] || flunk "a row in two chunks of $n"
	done
	run dpone-extract --chunk 3/2 m.yaml
	assert_failure 2
}

@test "identifiers are quoted: a table named a]b; DROP TABLE x-- is read and harms nothing" {
	sql <<'SQL'
DROP TABLE IF EXISTS [a]]b; DROP TABLE x--]
CREATE TABLE [a]]b; DROP TABLE x--] (id int NOT NULL PRIMARY KEY, [we]]ird col] nvarchar(5))
INSERT INTO [a]]b; DROP TABLE x--] VALUES (1, N'ok')
SQL
	sql <<< "DROP TABLE IF EXISTS x; CREATE TABLE x (id int)"
	extract_manifest 'a]b; DROP TABLE x--' full_refresh
	run bash -c 'dpone-extract m.yaml | sed -n 2p'
	assert_output '{"id":1,"we]ird col":"ok"}'
	run bash -c "echo \"SELECT COUNT(*) FROM x\" | sql"
	assert_output "0"
}

@test "a missing table, column or key column is a clear error" {
	orders_table
	extract_manifest nosuch_table full_refresh
	run dpone-extract m.yaml
	assert_failure 4
	assert_output_contains "m.yaml:5:17: source.table.name: table dbo.nosuch_table does not exist"
	# A column the manifest names is a usage error (2), with the closest.
	extract_manifest "$T" incremental_append "incremental_column: nope"
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "source.options.incremental_column: column 'nope' is not in dbo.$T (did you mean"
	extract_manifest "$T" incremental_merge "incremental_column: updated_at" "[id, nope]"
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "sink.strategy.unique_key[1]: column 'nope' is not in dbo.$T"
}

@test "a failed login exits 4 and writes nothing" {
	orders_table
	extract_manifest "$T" full_refresh
	export DPONE_CONN_MSSQL_DWH="mssql://$DPONE_TEST_MSSQL_USER:wrong@$DPONE_TEST_MSSQL_HOST:$DPONE_TEST_MSSQL_PORT/$DPONE_TEST_MSSQL_DATABASE"
	run bash -c 'dpone-extract m.yaml 2>err; echo "status=$?"; cat err'
	assert_output_contains "status=4"
	assert_output_contains "Login failed"
	refute_output_contains "wrong"
}

@test "the connection dropping mid-stream: exit 12 (transient: a retry may pass), no end message" {
	use_fault_stand_ins
	orders_table
	extract_manifest "$T" full_refresh
	control "$MSSQLD_CONTROL" "fault drop-after-rows 2 dbo.$T"
	run bash -c 'dpone-extract m.yaml > out.ndjson'
	assert_failure 12
	assert_output_contains "reading failed after 2 rows"
	assert_output_contains "the stream has no end message"
	if grep -q '^\["end"' out.ndjson; then flunk "out.ndjson has an end message"; fi
	run stream-relay < out.ndjson
	assert_failure 3
}

@test "a server error mid-result (a deadlock victim): exit 12 (transient), no end message" {
	use_fault_stand_ins
	orders_table
	extract_manifest "$T" full_refresh
	control "$MSSQLD_CONTROL" "fault error-after-rows 3 dbo.$T"
	run bash -c 'dpone-extract m.yaml > out.ndjson'
	assert_failure 12
	assert_output_contains "SQL Server error 1205"
	[ "$(wc -l < out.ndjson)" -eq 4 ] || flunk "$(cat out.ndjson)"
}

@test "SIGTERM mid-stream: exit 130, no end message" {
	use_fault_stand_ins
	orders_table
	extract_manifest "$T" full_refresh
	control "$MSSQLD_CONTROL" "fault stall-after-rows 2 3000 dbo.$T"
	dpone-extract m.yaml > out.ndjson 2> err &
	pid=$!
	sleep 0.7
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	[ "$status" -eq 130 ] || flunk "exit $status: $(cat err)"
	assert_file_contains err "interrupted"
	if grep -q '^\["end"' out.ndjson; then flunk "out.ndjson has an end message"; fi
}

@test "strategy cdc on a database without change data capture says what to enable" {
	orders_table
	extract_manifest "$T" cdc
	printf '%s\n' "  options: {deletes: {enabled: true}}" >> m.yaml
	run dpone-extract m.yaml
	assert_failure 4
	assert_output_contains "change data capture is not enabled in this database"
	assert_output_contains "sys.sp_cdc_enable_db"
	[ "$(echo "$output" | grep -c '^{')" -eq 0 ]
}

# types_table: every type, extremes, NULLs and empty values, in table $T.
types_table() {
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, b bit, ti tinyint, si smallint, i int, bi bigint,
  d decimal(38,10), n numeric(5,2), m money, sm smallmoney, r real, f float, dt date, tm time(3),
  sdt smalldatetime, dtm datetime, dt2 datetime2(7), dto datetimeoffset(2), c char(5), vc varchar(20),
  nvc nvarchar(30), vcm varchar(max), bn binary(4), vb varbinary(8), g uniqueidentifier)
INSERT INTO $T (id, b, ti, si, i, bi, d, n, m, sm, r, f, dt, tm, sdt, dtm, dt2, dto, c, vc, nvc, vcm, bn, vb, g) VALUES
 (1, 1, 255, -32768, -2147483648, -9223372036854775808, -9999999999999999999999999999.9999999999, 999.99,
  -922337203685477.5808, 214748.3647, 0.1, 0.1, '0001-01-01', '23:59:59.999', '2079-06-06 23:59', '1753-01-01 00:00:00.003',
  '9999-12-31 23:59:59.9999999', '2026-11-26 01:02:03.45 -13:45', 'a', 'x"y\z', N'😀𝄞 é	tab', '', 0x00FF, 0x, 'F3A9AB4F-1234-4E5A-9ABC-0123456789AB'),
 (2, 0, 0, 0, 0, 9223372036854775807, 0.0000000001, -0.01, 0, 0, 3.4e38, 1.7976931348623157e308, '9999-12-31', '00:00:00', '1900-01-01 00:00', '9999-12-31 23:59:59.997',
  '0001-01-01 00:00:00', '2026-11-26 10:00:00 +14:00', 'abcde', '', N'', 'xy', 0xDEADBEEF, 0x0102, '00000000-0000-0000-0000-000000000000')
INSERT INTO $T (id) VALUES (3)
SQL
}

@test "bcp and stream modes give identical rows for every type" {
	types_table
	extract_manifest "$T" full_refresh
	dpone-extract m.yaml | grep '^{' > stream.rows
	extract_manifest "$T" full_refresh "export_mode: bcp"
	dpone-extract m.yaml > bcp.ndjson
	grep '^{' bcp.ndjson > bcp.rows
	[ "$(wc -l < stream.rows)" -eq 3 ] || flunk "stream: $(cat stream.rows)"
	cmp stream.rows bcp.rows
	tail -n 1 bcp.ndjson | grep -q '^\["end",{"rows":3'
}

@test "nchar and nvarchar, read as their UTF-16 bytes: every escape, BMP and astral characters, (max), the same as bcp's iconv and as stored" {
	sql <<< "DROP TABLE IF EXISTS $T; CREATE TABLE $T (id int NOT NULL PRIMARY KEY, nc nchar(4), nv nvarchar(40), nm nvarchar(max))"
	py "$T" <<'PY'
t = sys.argv[1]
vals = [(1, "ab", "quote\" back\\ slash/", "x" * 5000 + "\u00e9" * 3000),
        (2, "\u00e9\u4e2d", "ctl \x01\x1f\t\n\r\x7f \u0800\uffff", "\U0001F600\U0010FFFF end"),
        (3, None, "", None),
        (4, "\u4e2d\u6587\u5b57\u7b26", "\U0001D11E\U0001F600\U0001F600", "")]
for v in vals:
    cur.execute("INSERT INTO %s (id, nc, nv, nm) VALUES (%%d, %%s, %%s, %%s)" % t, v)
PY
	extract_manifest "$T" full_refresh
	dpone-extract m.yaml > stream.ndjson
	grep -q 'CAST(\[nv\] AS varbinary(80))' <(dpone-extract --plan m.yaml) || flunk "$(dpone-extract --plan m.yaml)"
	extract_manifest "$T" full_refresh "export_mode: bcp"
	dpone-extract m.yaml | grep '^{' > bcp.rows
	grep '^{' stream.ndjson | cmp - bcp.rows || flunk "stream and bcp differ"
	dpone-extract m.yaml | stream-relay > /dev/null
	run /usr/bin/python3 -c '
import json
rows = [json.loads(l) for l in open("stream.ndjson") if l.startswith("{")]
assert rows[0]["nv"] == "quote\" back\\ slash/" and rows[0]["nm"] == "x" * 5000 + "\u00e9" * 3000, rows[0]["nv"]
assert rows[0]["nc"] == "ab  "
assert rows[1]["nc"] == "\u00e9\u4e2d  " and rows[1]["nv"] == "ctl \x01\x1f\t\n\r\x7f \u0800\uffff", repr(rows[1]["nv"])
assert rows[1]["nm"] == "\U0001F600\U0010FFFF end"
assert rows[2] == {"id": 3, "nc": None, "nv": "", "nm": None}, rows[2]
assert rows[3]["nv"] == "\U0001D11E\U0001F600\U0001F600" and rows[3]["nm"] == ""
print("ok")'
	assert_output "ok"
}

@test "bcp mode stages a zstd artifact in the run's directory that replays on its own" {
	orders_table
	extract_manifest "$T" incremental_append "export_mode: bcp, incremental_column: updated_at"
	printf 'observability:\n  artifacts: {path: runs}\n' >> m.yaml
	run dpone-extract --run-id r42 --from 2026-01-02T00:00:00 m.yaml
	assert_success
	[ -f runs/r42/extract.ndjson.zst ] || flunk "no artifact: $(find runs)"
	[ ! -e runs/r42/extract.bcp ] || flunk "the host file was left behind"
	zstd -dc runs/r42/extract.ndjson.zst > replay.ndjson
	printf '%s\n' "$output" | cmp - replay.ndjson
	run stream-relay -s < runs/r42/extract.ndjson.zst
	assert_success
	run ids < replay.ndjson
	assert_output "4 5 "
}

@test "bcp mode: an empty boundary is a header and an end of 0 rows" {
	orders_table
	extract_manifest "$T" incremental_append "export_mode: bcp, incremental_column: updated_at"
	printf 'observability:\n  artifacts: {enabled: false}\n' >> m.yaml
	run dpone-extract --from 2100-01-01T00:00:00 m.yaml
	assert_success
	[ "$(printf '%s\n' "$output" | wc -l)" -eq 2 ] || flunk "$output"
	printf '%s\n' "$output" | tail -n 1 | grep -q '^\["end",{"rows":0'
}

# How many bcp staging directories /tmp holds.
staging_dirs() {
	set -- /tmp/dpone-extract.*
	if [ -e "$1" ]; then echo $#; else echo 0; fi
}

@test "bcp mode with artifacts off leaves no staged file" {
	orders_table
	extract_manifest "$T" full_refresh "export_mode: bcp"
	printf 'observability:\n  artifacts: {enabled: false}\n' >> m.yaml
	before=$(staging_dirs)
	run bash -c 'dpone-extract m.yaml | ids'
	assert_output "1 2 3 4 5 "
	[ ! -d .dpone ] || flunk "artifacts were written: $(find .dpone)"
	[ "$(staging_dirs)" = "$before" ] || flunk "a staging directory was left in /tmp"
}

@test "bcp mode: a failure while copying out writes nothing on stdout" {
	use_fault_stand_ins
	orders_table
	extract_manifest "$T" full_refresh "export_mode: bcp"
	control "$MSSQLD_CONTROL" "fault drop-after-rows 2 dbo.$T"
	printf 'observability:\n  artifacts: {enabled: false}\n' >> m.yaml
	before=$(staging_dirs)
	run sh -c 'dpone-extract m.yaml > out.ndjson'
	assert_failure 12 # the connection dropped: transient
	assert_output_contains "bulk copy out failed"
	[ ! -s out.ndjson ] || flunk "stdout got: $(cat out.ndjson)"
	[ "$(staging_dirs)" = "$before" ] || flunk "a failed run left its staging directory"
}

@test "bcp mode: SIGTERM during the copy exits 130 at once, nothing on stdout, nothing staged" {
	use_fault_stand_ins
	orders_table
	extract_manifest "$T" full_refresh "export_mode: bcp"
	printf 'observability:\n  artifacts: {path: runs}\n' >> m.yaml
	control "$MSSQLD_CONTROL" "fault stall-after-rows 2 30000 dbo.$T"
	dpone-extract --run-id r7 m.yaml > out.ndjson 2> err &
	pid=$!
	# The artifact is opened just before the copy starts.
	for _ in $(seq 200); do [ -e runs/r7/extract.ndjson.zst ] && break; sleep 0.1; done
	sleep 0.5
	kill -TERM "$pid"
	started=$(date +%s)
	status=0
	wait "$pid" || status=$?
	[ "$status" -eq 130 ] || flunk "exit $status: $(cat err)"
	# Not after the server's 30 s stall: the signal reached the converting
	# thread, not the one waiting on the server.
	[ $(($(date +%s) - started)) -lt 20 ] || flunk "the extract waited for the stalled copy"
	assert_file_contains err "interrupted"
	[ ! -s out.ndjson ] || flunk "stdout got: $(cat out.ndjson)"
	[ ! -e runs/r7/extract.ndjson.zst ] || flunk "a cut run left its artifact"
}

@test "batch_size rows reach the reader before the extract ends" {
	use_fault_stand_ins
	orders_table
	extract_manifest "$T" full_refresh "batch_size: 2"
	control "$MSSQLD_CONTROL" "fault stall-after-rows 4 2000 dbo.$T"
	dpone-extract m.yaml > out.ndjson &
	pid=$!
	sleep 1
	# Stalled after 4 rows: the header and two batches of 2 are out already.
	[ "$(wc -l < out.ndjson)" -eq 5 ] || flunk "$(wc -l < out.ndjson) lines while stalled"
	wait "$pid"
	[ "$(wc -l < out.ndjson)" -eq 7 ]
}

@test "progress goes to a terminal's stderr, not into the stream; --quiet stops it" {
	orders_table
	extract_manifest "$T" full_refresh
	run script -qec "dpone-extract m.yaml > out.ndjson" /dev/null
	assert_success
	assert_output_contains "dpone-extract: 5 rows in"
	[ "$(wc -l < out.ndjson)" -eq 7 ]
	run script -qec "dpone-extract --quiet m.yaml > out.ndjson" /dev/null
	refute_output_contains "rows in"
}

@test "a value no SQL Server column can hold (an infinite float) stops the extract: exit 4, no end" {
	use_fault_stand_ins # a real SQL Server cannot store infinity; the stand-in (SQLite) can
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, f float)
INSERT INTO $T VALUES (1, 1.5), (2, 1e999)
SQL
	extract_manifest "$T" full_refresh
	run dpone-extract m.yaml
	assert_failure 4
	assert_output_contains "row 2, column f: the server sent a value no float column can hold"
	refute_output_contains '["end"'
}

@test "a value too big for a message is refused early: exit 5, the row named, memory bounded by the limit" {
	sql <<< "DROP TABLE IF EXISTS $T; CREATE TABLE $T (id int NOT NULL PRIMARY KEY, blob varbinary(max), note nvarchar(max))"
	sql <<SQL
INSERT INTO $T VALUES (1, 0x01, N'small')
INSERT INTO $T VALUES (2, REPLICATE(CAST(0xABABABABABABABAB AS varbinary(max)), 8388608), NULL)
INSERT INTO $T VALUES (3, NULL, REPLICATE(CAST(N'é' AS nvarchar(max)), 600000))
SQL
	extract_manifest "$T" full_refresh
	printf '  options: {delivery: {max_message_bytes: 1000000}}\n' >> m.yaml
	# Peak memory of dpone-extract (KiB) through getrusage of its parent.
	run /usr/bin/python3 -c '
import resource, subprocess, sys
p = subprocess.run(["dpone-extract", "m.yaml"], stdout=open("out.ndjson", "wb"), stderr=subprocess.PIPE)
sys.stdout.write(p.stderr.decode())
print("exit", p.returncode, "maxrss_kib", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)'
	assert_output_contains "dpone-extract: row 2 is "
	assert_output_contains "more than sink.options.delivery.max_message_bytes (1000000): it could not be published"
	assert_output_contains "exit 5 "
	rss=$(sed -n 's/.*maxrss_kib //p' <<< "$output")
	# The 64 MiB value never arrives whole: a few MiB over the limit at most.
	[ "$rss" -lt 40000 ] || flunk "dpone-extract peaked at $rss KiB for a 64 MiB value"
	[ "$(grep -c '^{' out.ndjson)" -eq 1 ] && ! grep -q '^\["end"' out.ndjson
	# Row 3: 600,000 characters, 1.2 MB in UTF-16 and as JSON: refused as well.
	sql <<< "DELETE FROM $T WHERE id = 2"
	run dpone-extract m.yaml
	assert_failure 5
	assert_output_contains "row 2 is 1200"
	# With room for it, it passes whole.
	sed -i 's/max_message_bytes: 1000000/max_message_bytes: 1300000/' m.yaml
	run bash -c 'dpone-extract m.yaml | sed -n 3p | jq ".note | length"'
	assert_output "600000"
}

@test "SIGINT while the server is silent cancels the query: exit 130 within seconds, not when the stall ends" {
	use_fault_stand_ins
	orders_table
	extract_manifest "$T" full_refresh
	control "$MSSQLD_CONTROL" "fault stall-after-rows 2 20000 dbo.$T" > /dev/null
	dpone-extract -q m.yaml > out.ndjson 2> err.txt &
	pid=$!
	sleep 1
	kill -INT "$pid"
	signalled=$(date +%s%N)
	rc=0
	wait "$pid" || rc=$?
	# An upper bound with slack (the stall is 20 s), not a performance threshold.
	[ "$(elapsed_ms "$signalled")" -lt 5000 ] || flunk "exit after $(elapsed_ms "$signalled") ms"
	[ "$rc" -eq 130 ] || flunk "exit $rc: $(cat err.txt)"
	grep -q "reading failed after 2 rows: interrupted: the query was cancelled; the stream has no end message" err.txt ||
		flunk "$(cat err.txt)"
	! grep -q '^\["end"' out.ndjson
}

@test "query_timeout: a server silent longer than it -> the query is cancelled, exit 4 naming the limit" {
	use_fault_stand_ins
	orders_table
	extract_manifest "$T" full_refresh "query_timeout: 2s"
	control "$MSSQLD_CONTROL" "fault stall-after-rows 2 20000 dbo.$T" > /dev/null
	started=$(date +%s%N)
	run dpone-extract -q m.yaml
	[ "$(elapsed_ms "$started")" -lt 10000 ] || flunk "exit after $(elapsed_ms "$started") ms"
	assert_failure 4
	assert_output_contains "the server sent nothing for source.options.query_timeout (2s): the query was cancelled"
	# Rows that keep coming are not a timeout, however long the query.
	control "$MSSQLD_CONTROL" "fault stall-after-rows 2 1000 dbo.$T" > /dev/null
	run dpone-extract -q m.yaml
	assert_success
}

@test "login_timeout: a server that never answers the login -> exit 4 naming the limit; an unresolvable host is said so" {
	python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(5)
print(s.getsockname()[1], flush=True); time.sleep(60)' > port.txt &
	listener=$!
	while [ ! -s port.txt ]; do sleep 0.05; done
	extract_manifest "$T" full_refresh "login_timeout: 2s"
	started=$(date +%s%N)
	DPONE_CONN_MSSQL_DWH="mssql://u:p@127.0.0.1:$(cat port.txt)/dwh" run dpone-extract -q m.yaml
	kill "$listener"
	[ "$(elapsed_ms "$started")" -lt 10000 ] || flunk "exit after $(elapsed_ms "$started") ms"
	assert_failure 4
	assert_output_contains "no answer to the login within source.options.login_timeout (2s)"
	DPONE_CONN_MSSQL_DWH="mssql://u:p@no-such-host.invalid:1433/dwh" run dpone-extract -q m.yaml
	assert_failure 4
	assert_output_contains "cannot connect to mssql_dwh (no-such-host.invalid:1433): the host name no-such-host.invalid did not resolve"
	refute_output_contains "configuration files"
}

@test "timeouts are durations checked at load: '1 day' and '30' are errors naming the key and the forms" {
	for bad in "1 day" "30" "0s"; do
		extract_manifest "$T" full_refresh "query_timeout: \"$bad\""
		run dpone-extract m.yaml
		assert_failure 2
		assert_output_contains "source.options.query_timeout: '$bad' is not a duration: write a whole number above 0 and s, m, h or d"
	done
	extract_manifest "$T" full_refresh "login_timeout: 45s, query_timeout: 2h"
	run dpone-plan --get source.options.login_timeout --get source.options.query_timeout m.yaml
	assert_output '45s
2h'
}

@test "connection parameters packet_size and application_intent reach the login: the server's answer says so" {
	orders_table
	extract_manifest "$T" full_refresh
	run dpone-extract -q --check m.yaml
	assert_success
	jq -e '.packet_size == 4096 and .updateability == "READ_WRITE"' <<< "$output" > /dev/null || flunk "$output"
	base=$DPONE_CONN_MSSQL_DWH
	DPONE_CONN_MSSQL_DWH="$base?packet_size=32767&application_intent=read_only" run dpone-extract -q --check m.yaml
	assert_success
	# The server negotiated the size; the stand-in treats a read-only intent
	# session as an availability group's readable secondary does (a real
	# primary without one answers READ_WRITE).
	jq -e '.packet_size == 32767' <<< "$output" > /dev/null || flunk "$output"
	if [ -z "${DPONE_TEST_MSSQL_URL:-}" ]; then
		jq -e '.updateability == "READ_ONLY"' <<< "$output" > /dev/null || flunk "$output"
	fi
	DPONE_CONN_MSSQL_DWH="$base?packet_size=32767" run dpone-extract -q m.yaml
	assert_success
	[ "$(grep -c '^{' <<< "$output")" -eq 5 ]
	DPONE_CONN_MSSQL_DWH="$base?packet_size=100" run dpone-extract -q m.yaml
	assert_failure 10
	assert_output_contains "packet_size '100': expected 512 to 32767 bytes"
	DPONE_CONN_MSSQL_DWH="$base?application_intent=readonly" run dpone-extract -q m.yaml
	assert_failure 10
	assert_output_contains "application_intent 'readonly': expected read_only or read_write"
}
