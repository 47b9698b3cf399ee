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
