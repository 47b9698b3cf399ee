#!/usr/bin/env bats
# dpone-check: options, manifest handling, and each check on streams
# written here (it needs no server).

load test_helper

@test "dpone-check --help prints the usage on stdout and exits 0" {
	run dpone-check --help
	assert_success
	assert_output_contains "usage: dpone-check [-hqV]"
}

@test "dpone-check --version" {
	run dpone-check --version
	assert_success
	assert_output "dpone-check 0.1.0"
}

@test "dpone-check: an unknown option is a usage error" {
	run dpone-check --bogus m.yaml
	assert_failure 2
	assert_output_contains "dpone-check: unknown option --bogus"
	assert_output_contains "usage: dpone-check"
}

@test "dpone-check: a missing manifest operand is a usage error" {
	run dpone-check
	assert_failure 2
	assert_output_contains "dpone-check: missing MANIFEST"
}

@test "dpone-check: a bad manifest exits 2 with file:line:col" {
	write_manifest
	sed -i 's/^  topic: dwh.orders/  topik: dwh.orders/' m.yaml
	run dpone-check m.yaml
	assert_failure 2
	assert_output "dpone-check: m.yaml:10:3: sink.topik: unknown key (did you mean 'topic'?)"
}

@test "dpone-check --print-manifest prints the resolved manifest" {
	write_manifest
	use_env_connections "Pl4nted-check-$$"
	run dpone-check --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.password)" = "***" ]
	refute_output_contains "Pl4nted-check-$$"
}

# checks_manifest CHECKS-YAML [QUALITY-MODE]: ./m.yaml with those checks.
checks_manifest() {
	write_manifest
	sed -i 's/^    mode: full_refresh/    mode: incremental_merge\n    unique_key: [id]/' m.yaml
	printf 'quality:\n  mode: %s\n  checks:\n%s\n' "${2:-fail}" "$1" >> m.yaml
}

# rows N [AGE-SECONDS]: a stream of N rows, updated_at AGE seconds ago
# (default 60); ids 1..N, name null for even ids.
rows() {
	local ts
	ts=$(date -u -d "@$(( $(date +%s) - ${2:-60} ))" +%Y-%m-%dT%H:%M:%S.1234567)
	printf '["header",{"protocol":1,"run_id":"r","columns":[{"name":"id","sql_type":"int"},{"name":"name","sql_type":"nvarchar(9)"},{"name":"updated_at","sql_type":"datetime2(7)"}],"key":["id"],"boundary":{"kind":"incremental","column":"updated_at"}}]\n'
	for i in $(seq 1 "$1"); do
		if [ $((i % 2)) -eq 0 ]; then name=null; else name="\"n$i\""; fi
		printf '{"id":%d,"name":%s,"updated_at":"%s"}\n' "$i" "$name" "$ts"
	done
	printf '["end",{"rows":%d}]\n' "$1"
}

# checks: the checks message of ./out.ndjson.
checks() {
	grep '^\["checks"' out.ndjson | jq -c '.[1]'
}

@test "dpone-check passes the stream through and adds its checks before the end" {
	checks_manifest '    - {type: min_rows, threshold: 1}'
	rows 5 > in.ndjson
	dpone-check -q m.yaml < in.ndjson > out.ndjson
	grep -v '^\["checks"' out.ndjson | cmp - in.ndjson
	[ "$(tail -n 2 out.ndjson | head -n 1 | cut -c1-10)" = '["checks",' ]
	checks | jq -e '.passed == true and .rows == 5 and .results[0].status == "pass"' > /dev/null || flunk "$(checks)"
}

@test "min_rows and max_rows: a failure exits 8 after writing the whole stream" {
	checks_manifest '    - {type: min_rows, threshold: 10}
    - {type: max_rows, threshold: 3, name: not too many}'
	rows 5 > in.ndjson
	run bash -c 'dpone-check m.yaml < in.ndjson > out.ndjson'
	assert_failure 8
	assert_output_contains "min_rows check failed: 5 rows, at least 10 wanted"
	assert_output_contains "max_rows check failed: 5 rows, at most 3 wanted"
	tail -n 1 out.ndjson | grep -q '^\["end"'
	checks | jq -e '.passed == false and .results[1].name == "not too many"' > /dev/null || flunk "$(checks)"
}

@test "not_null counts nulls against its tolerance" {
	checks_manifest '    - {type: not_null, column: name}'
	rows 4 > in.ndjson
	run bash -c 'dpone-check m.yaml < in.ndjson > out.ndjson'
	assert_failure 8
	assert_output_contains "not_null check failed: 2 nulls in 4 rows (0 allowed), first in name"
	checks_manifest '    - {type: not_null, columns: [name, id], tolerance: {mode: pct, value: 50}}'
	dpone-check -q m.yaml < in.ndjson > out.ndjson
	checks | jq -e '.passed and .results[0].violations == 2' > /dev/null || flunk "$(checks)"
	checks_manifest '    - {type: not_null, column: name, tolerance_pct: 10}'
	run bash -c 'dpone-check m.yaml < in.ndjson > out.ndjson'
	assert_failure 8
}

@test "unique finds duplicate keys (default: the unique_key) in bounded memory" {
	checks_manifest '    - {type: unique}'
	{ rows 3 | sed '$d'; rows 2 | sed '1d;$d'; echo '["end",{"rows":5}]'; } > in.ndjson
	run bash -c 'dpone-check m.yaml < in.ndjson > out.ndjson'
	assert_failure 8
	assert_output_contains "unique check failed: 2 duplicate keys in 5 rows (0 allowed), first duplicate [1]"
	checks_manifest '    - {type: unique, columns: [id, name], tolerance: {mode: absolute, value: 2}}'
	dpone-check -q m.yaml < in.ndjson > out.ndjson
	checks | jq -e '.passed' > /dev/null || flunk "$(checks)"
}

@test "freshness: the latest watermark must be younger than max_age" {
	checks_manifest '    - {type: freshness, max_age: 1h}'
	rows 2 60 > in.ndjson
	dpone-check -q m.yaml < in.ndjson > out.ndjson
	checks | jq -e '.passed' > /dev/null || flunk "$(checks)"
	rows 2 7200 > in.ndjson
	run bash -c 'dpone-check m.yaml < in.ndjson > out.ndjson'
	assert_failure 8
	assert_output_contains "freshness check failed: latest updated_at"
	rows 0 > in.ndjson
	run bash -c 'dpone-check m.yaml < in.ndjson > out.ndjson'
	assert_failure 8
	assert_output_contains "no value of updated_at in this run"
}

@test "severity warning and quality.mode warn report without failing; mode off checks nothing" {
	checks_manifest '    - {type: min_rows, threshold: 10, severity: warning}'
	rows 2 > in.ndjson
	run bash -c 'dpone-check m.yaml < in.ndjson > out.ndjson'
	assert_success
	assert_output_contains "min_rows check failed (warning only)"
	checks | jq -e '.passed and .results[0].status == "warn"' > /dev/null || flunk "$(checks)"
	checks_manifest '    - {type: min_rows, threshold: 10}' warn
	run bash -c 'dpone-check m.yaml < in.ndjson > out.ndjson'
	assert_success
	checks | jq -e '.passed and .mode == "warn"' > /dev/null || flunk "$(checks)"
	checks_manifest '    - {type: min_rows, threshold: 10}' off
	dpone-check -q m.yaml < in.ndjson > out.ndjson
	checks | jq -e '.passed and .results == []' > /dev/null || flunk "$(checks)"
}

@test "hash_reconciliation: the hash of the rows checked is the hash of the rows dpone-produce publishes" {
	checks_manifest '    - {type: hash_reconciliation}'
	use_env_connections
	rows 50 > in.ndjson
	dpone-check -q m.yaml < in.ndjson > out.ndjson
	extracted=$(checks | jq -r '.results[0].row_hash')
	[ "$(checks | jq -r .results[0].status)" = deferred ]
	published=$(dpone-produce -q --dry-run m.yaml < out.ndjson | grep '^\["delivery"' | jq -r '.[1].row_hash')
	[ "$extracted" = "$published" ] || flunk "$extracted != $published"
	# Rows in another order hash the same.
	{ head -n 1 in.ndjson; sed '1d;$d' in.ndjson | tac; tail -n 1 in.ndjson; } | dpone-check -q m.yaml > out2.ndjson
	[ "$(grep '^\["checks"' out2.ndjson | jq -r '.[1].results[0].row_hash')" = "$extracted" ]
}

@test "a truncated stream is passed on as far as it goes, without checks or end, exit 3" {
	checks_manifest '    - {type: min_rows, threshold: 1}'
	run bash -c 'rows 3 | sed "\$d" | dpone-check m.yaml > out.ndjson'
	assert_failure 3
	! grep -q '^\["checks"\|^\["end"' out.ndjson
}

# ---- schema evolution ----

# published COLUMNS-JSON: state as if the job's last run had published them.
published() {
	local path
	path=$(dpone-plan --get state.path m.yaml)
	mkdir -p "$(dirname "$path")"
	jq -n --argjson cols "$1" '{job: "orders_job", record: {run_id: "r0", schema: $cols}, history: []}' > "$path"
}

# col NAME SQL-TYPE LOGICAL NULLABLE [MORE-JSON]: a header column object.
col() {
	jq -nc --arg n "$1" --arg t "$2" --arg l "$3" --argjson nl "$4" --argjson x "${5:-"{}"}" \
		'{name: $n, sql_type: $t, logical_type: $l, nullable: $nl} + $x'
}

# one_row COLUMNS-JSON ROW: a stream of that header and one row.
one_row() {
	printf '["header",{"protocol":1,"run_id":"r1","columns":%s,"key":["id"]}]\n%s\n["end",{"rows":1}]\n' "$1" "$2"
}

@test "schema evolution: additions and widening pass and are recorded in the header" {
	write_manifest
	id=$(col id int integer false)
	published "[$id, $(col a int integer false), $(col b 'varchar(10)' string false '{"max_length":10}'),
		$(col c 'decimal(10,2)' decimal false '{"precision":10,"scale":2}'), $(col d 'datetime2(3)' timestamp false '{"scale":3}'),
		$(col e real float true), $(col f smalldatetime timestamp false), $(col g 'varchar(5)' string true '{"max_length":5}'),
		$(col gone int integer true)]"
	now="[$id, $(col a bigint integer false), $(col b 'nvarchar(max)' string false '{"max_length":-1}'),
		$(col c 'decimal(18,2)' decimal false '{"precision":18,"scale":2}'), $(col d 'datetime2(7)' timestamp false '{"scale":7}'),
		$(col e float float false), $(col f datetime2 timestamp false '{"scale":7}'), $(col g 'varchar(5)' string true '{"max_length":5}'),
		$(col new 'nvarchar(3)' string true '{"max_length":3}')]"
	now=$(jq -c . <<< "$now")
	one_row "$now" '{"id":1,"a":1,"b":"x","c":"1.00","d":"2026-01-01T00:00:00.0000000","e":1.5,"f":"2026-01-01T00:00:00.0000000","g":"y","new":null}' > in.ndjson
	run dpone-check -q m.yaml < in.ndjson
	assert_success
	header=$(head -1 <<< "$output")
	changes=$(jq -c '.[1].schema_changes | map([.column, .change, .breaking, .action])' <<< "$header")
	[ "$changes" = '[["a","widened",false,"applied"],["b","widened",false,"applied"],["c","widened",false,"applied"],["d","widened",false,"applied"],["e","widened",false,"applied"],["e","null_refused",false,"applied"],["f","widened",false,"applied"],["new","added",false,"applied"],["gone","dropped",false,"applied"]]' ] ||
		flunk "changes: $changes"
	[ "$(sed -n 2p <<< "$output")" = "$(sed -n 2p in.ndjson)" ] || flunk "the row was changed"
}

@test "schema evolution: each breaking change stops the run before any row passes" {
	write_manifest
	id=$(col id int integer false)
	# old column | new column | what the message says
	while IFS='|' read -r old new says; do
		published "[$id, $old]"
		one_row "[$id, $new]" '{"id":1,"x":1}' > in.ndjson
		run dpone-check -q m.yaml < in.ndjson
		[ "$status" -eq 8 ] || flunk "$old -> $new: exit $status: $output"
		assert_output_contains "breaking change since run r0: $says; nothing was published"
		refute_output_contains '{"id":1'
	done <<ROWS
$(col x bigint integer false)|$(col x int integer false)|x narrowed (bigint -> int)
$(col x int integer false)|$(col x 'varchar(10)' string false '{"max_length":10}')|x type_changed (int -> varchar(10))
$(col x 'nvarchar(10)' string false '{"max_length":10}')|$(col x 'varchar(10)' string false '{"max_length":10}')|x narrowed (nvarchar(10) -> varchar(10))
$(col x 'varchar(max)' string false '{"max_length":-1}')|$(col x 'varchar(8000)' string false '{"max_length":8000}')|x narrowed (varchar(max) -> varchar(8000))
$(col x 'decimal(18,2)' decimal false '{"precision":18,"scale":2}')|$(col x 'decimal(18,4)' decimal false '{"precision":18,"scale":4}')|x type_changed (decimal(18,2) -> decimal(18,4))
$(col x 'decimal(18,2)' decimal false '{"precision":18,"scale":2}')|$(col x 'decimal(10,2)' decimal false '{"precision":10,"scale":2}')|x narrowed (decimal(18,2) -> decimal(10,2))
$(col x 'datetime2(7)' timestamp false '{"scale":7}')|$(col x datetime timestamp false '{"scale":3}')|x narrowed (datetime2(7) -> datetime)
$(col x money decimal false '{"precision":19,"scale":4}')|$(col x 'decimal(19,4)' decimal false '{"precision":19,"scale":4}')|x type_changed (money -> decimal(19,4))
$(col x int integer false)|$(col y int integer false)|x dropped (int -> none)
ROWS
}

@test "schema evolution: on_breaking variant sends the new values to __dpone__nc__<column>" {
	write_manifest
	printf 'schema_evolution:\n  on_breaking: variant\n' >> m.yaml
	id=$(col id int integer false)
	published "[$id, $(col amount 'decimal(18,2)' decimal true '{"precision":18,"scale":2}')]"
	one_row "[$id, $(col amount float float true)]" '{"id":1,"amount":1.5}' > in.ndjson
	run dpone-check -q m.yaml < in.ndjson
	assert_success
	[ "$(sed -n 2p <<< "$output")" = '{"id":1,"__dpone__nc__amount":1.5}' ] || flunk "$output"
	jq -e '.[1].columns | map(.name + ":" + .sql_type) == ["id:int", "__dpone__nc__amount:float", "amount:decimal(18,2)"]' \
		<<< "$(head -1 <<< "$output")" > /dev/null || flunk "$output"
	jq -e '.[1].schema_changes[0] | .change == "type_changed" and .action == "variant"' <<< "$(head -1 <<< "$output")" > /dev/null ||
		flunk "$output"
	# A key column cannot move to a variant.
	published "[$(col id bigint integer false)]"
	one_row "[$(col id int integer false)]" '{"id":1}' > in.ndjson
	run dpone-check -q m.yaml < in.ndjson
	assert_failure 8
	assert_output_contains "key column id changed (narrowed); keys cannot move to a variant column"
}

@test "schema evolution: no published schema yet, unchanged, or disabled: the stream passes as it is" {
	write_manifest
	id=$(col id int integer false)
	one_row "[$id]" '{"id":1}' > in.ndjson
	run dpone-check -q m.yaml < in.ndjson
	assert_success
	[ "$output" = "$(cat in.ndjson | sed '$d'; echo '["checks",{"mode":"fail","passed":true,"rows":1,"results":[]}]'; tail -1 in.ndjson)" ] ||
		flunk "$output"
	[ ! -e .dpone ] || flunk "reading the published schema created state"
	published "[$id]"
	run dpone-check -q m.yaml < in.ndjson
	assert_success
	[ "$(head -1 <<< "$output")" = "$(head -1 in.ndjson)" ] || flunk "$output"
	published "[$(col id bigint integer false)]"
	printf 'schema_evolution:\n  enabled: false\n' >> m.yaml
	run dpone-check -q m.yaml < in.ndjson
	assert_success
}

# ---- type contracts ----

# contract_file ENFORCEMENT EMPTY-STRING: ./contract.yaml for the rows below.
contract_file() {
	cat > contract.yaml <<YAML
contract:
  enforcement: $1
  empty_string: $2
  columns:
    id: {logical_type: integer, nullable: false}
    name: {logical_type: string, nullable: true}
    updated_at: {logical_type: timestamp, nullable: false}
    code: {logical_type: uuid}
YAML
}

contract_stream() {
	cat <<'NDJSON'
["header",{"protocol":1,"run_id":"r1","columns":[{"name":"id","sql_type":"int","logical_type":"integer","nullable":false},{"name":"name","sql_type":"nvarchar(20)","logical_type":"string","nullable":true},{"name":"updated_at","sql_type":"datetime2(7)","logical_type":"timestamp","nullable":true}],"key":["id"]}]
{"id":1,"name":"a","updated_at":"2026-11-26T08:00:00.1234567"}
{"id":2,"name":"","updated_at":null}
{"id":"x3","name":7,"updated_at":"2026-11-26"}
{"id":4,"name":"","updated_at":"2026-11-26T08:00:04.1234567"}
["end",{"rows":4}]
NDJSON
}

@test "contract warn: violations per column with counts and sample keys; the run goes on" {
	write_manifest
	printf 'contract: contract.yaml\n' >> m.yaml
	contract_file warn reject
	contract_stream > in.ndjson
	run dpone-check -q m.yaml < in.ndjson
	assert_success
	result=$(grep '^\["checks"' <<< "$output" | jq -c '.[1].results[] | select(.type == "contract")')
	jq -e '.status == "warn" and .violations == 7 and .enforcement == "warn"' <<< "$result" > /dev/null || flunk "$result"
	cols=$(jq -c '[.columns[] | [.column, .type, .null, .empty_string, .sample_keys]]' <<< "$result")
	[ "$cols" = '[["id",1,0,0,[{"id":"x3"}]],["name",1,0,2,[{"id":2},{"id":"x3"},{"id":4}]],["updated_at",1,1,0,[{"id":2},{"id":"x3"}]],["code",0,0,0,[]]]' ] ||
		flunk "$cols"
	jq -e '.columns[3].missing == true' <<< "$result" > /dev/null || flunk "$result"
	[ "$(grep -c '^{' <<< "$output")" -eq 4 ]
}

@test "contract strict fails the run (exit 8); off ignores it; empty_string as_null sends \"\" on as null" {
	write_manifest
	printf 'contract: contract.yaml\n' >> m.yaml
	contract_file strict keep
	contract_stream > in.ndjson
	run dpone-check -q m.yaml < in.ndjson
	assert_failure 8
	assert_output_contains "contract failed: 5 values break the contract"
	grep '^\["checks"' <<< "$output" | jq -e '.[1].passed == false' > /dev/null
	contract_file off keep
	run dpone-check -q m.yaml < in.ndjson
	assert_success
	refute_output_contains '"contract"'
	contract_file warn as_null
	run dpone-check -q m.yaml < in.ndjson
	assert_success
	[ "$(sed -n 3p <<< "$output")" = '{"id":2,"name":null,"updated_at":null}' ] || flunk "$output"
	[ "$(sed -n 2p <<< "$output")" = "$(sed -n 2p in.ndjson)" ]
}

@test "contract: a bad contract file is refused with file:line:col" {
	write_manifest
	printf 'contract: contract.yaml\n' >> m.yaml
	printf 'contract:\n  enforcement: strict\n  columns:\n    id: {logical_type: integr}\n' > contract.yaml
	run dpone-check m.yaml < /dev/null
	assert_failure 2
	assert_output_contains "contract.yaml:4:"
	assert_output_contains "contract.columns.id.logical_type: expected one of boolean, integer"
}
