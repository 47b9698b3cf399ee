#!/usr/bin/env bats
# The stream framing in libcommon, driven through tests/tools/stream-relay
# (reader -> writer). See man/dpone-stream.7.

load test_helper

header='["header",{"protocol":1,"run_id":"r1","source":{"schema":"dbo","table":"orders"},"columns":[{"name":"id","sql_type":"int","nullable":false},{"name":"note","sql_type":"nvarchar(20)","nullable":true}],"key":["id"]}]'

# good_stream N: a complete stream of N rows on stdout.
good_stream() {
	echo "$header"
	for i in $(seq 1 "$1"); do
		printf '{"id":%d,"note":"row %d \\u00e9 ☃"}\n' "$i" "$i"
	done
	printf '["end",{"rows":%d}]\n' "$1"
}

@test "a complete stream passes through byte for byte" {
	good_stream 1000 > in.ndjson
	run stream-relay -s < in.ndjson
	assert_success
	stream-relay < in.ndjson > out.ndjson
	cmp in.ndjson out.ndjson
}

@test "rows pass through in order with their counts" {
	good_stream 3 > in.ndjson
	run sh -c 'stream-relay -s < in.ndjson 2>&1 >/dev/null'
	assert_success
	assert_output "rows=3 deletes=0 lines=5"
}

@test "zstd input is detected by its magic and decompressed" {
	good_stream 5000 > in.ndjson
	zstd -q -c in.ndjson > in.ndjson.zst
	stream-relay < in.ndjson.zst > out.ndjson
	cmp in.ndjson out.ndjson
}

@test "several concatenated zstd frames are one stream" {
	good_stream 10 > in.ndjson
	head -n 4 in.ndjson | zstd -q -c > two.zst
	tail -n +5 in.ndjson | zstd -q -c >> two.zst
	stream-relay < two.zst > out.ndjson
	cmp in.ndjson out.ndjson
}

@test "zstd output round-trips through the zstd tool" {
	good_stream 2000 > in.ndjson
	stream-relay -z 3 < in.ndjson > out.zst
	zstd -q -d -c out.zst > out.ndjson
	cmp in.ndjson out.ndjson
}

@test "a stream without its end is truncated: exit 3 and the line count" {
	good_stream 7 | head -n 6 > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "stdin:6: stream is truncated: no end message after 5 rows"
}

@test "a truncated zstd stream is an error, not a short stream" {
	good_stream 3000 | zstd -q -c > full.zst
	head -c $(( $(stat -c %s full.zst) / 2 )) full.zst > half.zst
	run stream-relay < half.zst
	assert_failure 3
}

@test "corrupt zstd input is reported" {
	good_stream 100 | zstd -q -c > full.zst
	# Deterministic damage: 64 bytes of 0xff over the first block.
	{ head -c 12 full.zst; head -c 64 /dev/zero | tr '\0' '\377'; tail -c +77 full.zst; } > bad.zst
	run stream-relay < bad.zst
	assert_failure 3
	assert_output_contains "stdin:1: corrupt compressed input"
}

@test "an empty input is a truncated stream" {
	run stream-relay < /dev/null
	assert_failure 3
	assert_output_contains "empty stream: no header message"
}

@test "the first line must be the header" {
	{ echo '{"id":1}'; echo '["end",{"rows":1}]'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "stdin:1: row before the header message"
	printf '["end",{"rows":0}]\n' > in2.ndjson
	run stream-relay < in2.ndjson
	assert_failure 3
	assert_output_contains 'stdin:1: stream must start with a header message, not "end"'
}

@test "a second header is refused" {
	{ echo "$header"; echo "$header"; echo '["end",{"rows":0}]'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "stdin:2: second header message"
}

@test "an unsupported protocol version is refused" {
	{ echo '["header",{"protocol":2,"columns":[]}]'; echo '["end",{"rows":0}]'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "stdin:1: unsupported stream protocol 2"
}

@test "nothing may follow the end message" {
	{ good_stream 2; echo '{"id":9}'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "stdin:5: data after the end message"
}

@test "end's row count must match the rows read" {
	{ echo "$header"; echo '{"id":1}'; echo '["end",{"rows":2}]'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "stdin:3: end message says 2 rows but 1 were read"
}

@test "end must carry the row count: without it a stream is not proven whole" {
	for end in '["end",{}]' '["end",{"rows":"1"}]' '["end",{"rows":-1}]'; do
		{ echo "$header"; echo '{"id":1}'; echo "$end"; } > in.ndjson
		run stream-relay < in.ndjson
		assert_failure 3
		assert_output_contains "stdin:3: end message: \"rows\" is"
	done
}

@test "a row naming a member twice is a stream error in every stage that reads rows" {
	# Keyed by the first "id" while consumers see the last; the second row
	# passed not_null and unique before.
	for row in '{"id":1,"note":"a","id":2}' '{"id":2,"id":null}' '{"note":"a","id":1,"\u0069d":3}'; do
		{ echo "$header"; echo "$row"; echo '["end",{"rows":1}]'; } > in.ndjson
		run stream-relay < in.ndjson
		assert_failure 3
		assert_output_contains "stdin:2: invalid row at byte"
		assert_output_contains "a member name appears twice in the row"
		write_manifest
		use_env_connections
		printf 'quality:\n  checks:\n    - {type: not_null, columns: [id]}\n    - {type: unique, columns: [id]}\n' >> m.yaml
		run dpone-check -q m.yaml < in.ndjson
		assert_failure 3
		assert_output_contains "a member name appears twice in the row"
		run dpone-produce -q --dry-run m.yaml < in.ndjson
		assert_failure 3
		assert_output_contains "a member name appears twice in the row"
	done
	# The header's names in another order, or fewer of them, are fine; a
	# header naming a column twice is not.
	{ echo "$header"; echo '{"note":"a","id":1}'; echo '{"id":2}'; echo '["end",{"rows":2}]'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_success
	{ echo '["header",{"protocol":1,"run_id":"r1","columns":[{"name":"id"},{"name":"id"}],"key":["id"]}]'; echo '["end",{"rows":0}]'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "stdin:1: header names column id twice"
}

@test "a malformed row is reported with its line number and byte" {
	{ echo "$header"; echo '{"id":1}'; echo '{"id":2,"note":"x'; echo '["end",{"rows":2}]'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "stdin:3: row is not a complete JSON object"
	{ echo "$header"; echo '{"id":1}'; echo '{"id":2,"note":"x}'; echo '["end",{"rows":2}]'; } > in1.ndjson
	run stream-relay < in1.ndjson
	assert_failure 3
	assert_output_contains "stdin:3: invalid row at byte 19: unterminated string"
	{ echo "$header"; echo '{"id":1,}'; echo '["end",{"rows":1}]'; } > in2.ndjson
	run stream-relay < in2.ndjson
	assert_failure 3
	assert_output_contains "stdin:2: invalid row at byte 9: expected a string key"
}

@test "invalid UTF-8 inside a row is refused" {
	{ echo "$header"; printf '{"note":"\xff"}\n'; echo '["end",{"rows":1}]'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "stdin:2: invalid row at byte 10: invalid UTF-8"
}

@test "with -n rows are framed but not validated" {
	{ echo "$header"; echo '{"id":1,}'; echo '["end",{"rows":1}]'; } > in.ndjson
	run stream-relay -n < in.ndjson
	assert_success
}

@test "a line that is neither a row nor a control message is refused" {
	{ echo "$header"; echo ' {"id":1}'; echo '["end",{"rows":1}]'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "stdin:2: line is neither a row"
	{ echo "$header"; echo; echo '["end",{"rows":0}]'; } > in2.ndjson
	run stream-relay < in2.ndjson
	assert_failure 3
	assert_output_contains "stdin:2: empty line"
}

@test "a malformed control message is refused" {
	{ echo "$header"; echo '["end"]'; } > in.ndjson
	run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains 'stdin:2: control message must be ["name", {...}]'
	{ echo "$header"; echo '["end",{"rows":0}'; } > in2.ndjson
	run stream-relay < in2.ndjson
	assert_failure 3
	assert_output_contains "stdin:2: invalid control message"
}

@test "deletes are control messages, counted and checked against end" {
	{ echo "$header"; echo '{"id":1}'; echo '["delete",{"id":2}]'; echo '["end",{"rows":1,"deletes":1}]'; } > in.ndjson
	run sh -c 'stream-relay -s < in.ndjson 2>&1 >/dev/null'
	assert_success
	assert_output "rows=1 deletes=1 lines=4"
	{ echo "$header"; echo '["delete",{"id":2}]'; echo '["end",{"rows":0,"deletes":2}]'; } > in2.ndjson
	run stream-relay < in2.ndjson
	assert_failure 3
	assert_output_contains "deletes\" does not match the 1 deletes read"
}

@test "a column named like a control message is still a row" {
	{ echo "$header"; echo '{"delete":true,"end":1,"header":"x"}'; echo '["end",{"rows":1}]'; } > in.ndjson
	run sh -c 'stream-relay -s < in.ndjson 2>&1 >/dev/null'
	assert_success
	assert_output "rows=1 deletes=0 lines=3"
}

@test "unknown control messages pass through unchanged" {
	{ echo "$header"; echo '["delivery",{"delivered":0}]'; echo '["end",{"rows":0}]'; } > in.ndjson
	stream-relay < in.ndjson > out.ndjson
	cmp in.ndjson out.ndjson
}

@test "CRLF line ends and a missing final newline are accepted" {
	printf '%s\r\n{"id":1}\r\n["end",{"rows":1}]' "$header" > in.ndjson
	run stream-relay < in.ndjson
	assert_success
	assert_line_count 3
}

@test "a line over DPONE_MAX_LINE_BYTES is refused; a large one under it passes" {
	long=$(head -c 300000 /dev/zero | tr '\0' 'a')
	{ echo "$header"; printf '{"note":"%s"}\n' "$long"; echo '["end",{"rows":1}]'; } > in.ndjson
	DPONE_MAX_LINE_BYTES=100000 run stream-relay < in.ndjson
	assert_failure 3
	assert_output_contains "line longer than 100000 bytes"
	DPONE_MAX_LINE_BYTES=400000 stream-relay < in.ndjson > out.ndjson
	cmp in.ndjson out.ndjson
}

@test "a control message is bounded before it is parsed: bytes, nesting, values" {
	# 2 MiB of empty objects: refused by size (DPONE_MAX_CONTROL_BYTES), and
	# the same from 8 KiB of zstd, without growing a tree of them.
	{ echo "$header"; printf '["note",{"a":['; yes '{},' | head -c 2097152 | tr -d '\n'; printf '{}]}]\n'; good_stream 0 | sed 1d; } > big.ndjson
	zstd -q -19 big.ndjson -o big.ndjson.zst
	run stream-relay < big.ndjson.zst
	assert_failure 3
	assert_output_contains "stdin:2: control message of 1572883 bytes, more than 1048576 (DPONE_MAX_CONTROL_BYTES)"
	/usr/bin/time -f '%M' -o rss stream-relay < big.ndjson.zst > /dev/null 2>&1 || true
	[ "$(tail -n 1 rss)" -lt 102400 ] || flunk "$(cat rss) KiB to refuse it"
	# Nesting and the number of values, each within the byte limit.
	{ echo "$header"; printf '["note",{"a":'; printf '[%.0s' $(seq 40); printf ']%.0s' $(seq 40); printf '}]\n'; good_stream 0 | sed 1d; } > deep.ndjson
	run stream-relay < deep.ndjson
	assert_failure 3
	assert_output_contains "stdin:2: control message nested deeper than 32"
	{ echo "$header"; printf '["note",{"a":['; yes '1,' | head -n 100001 | tr -d '\n'; printf '1]}]\n'; good_stream 0 | sed 1d; } > wide.ndjson
	run stream-relay < wide.ndjson
	assert_failure 3
	assert_output_contains "stdin:2: control message with more than 100000 values"
	# The limit is configurable, and a header of a thousand columns is far below it.
	DPONE_MAX_CONTROL_BYTES=4096 run stream-relay < deep.ndjson
	assert_failure 3
	cols=$(for i in $(seq 1000); do printf '{"name":"column_%d","sql_type":"nvarchar(100)","logical_type":"string","nullable":true},' "$i"; done)
	{ printf '["header",{"protocol":1,"run_id":"r1","columns":[%s{"name":"id","sql_type":"int"}],"key":["id"]}]\n' "$cols"; echo '["end",{"rows":0}]'; } > wide-header.ndjson
	run stream-relay < wide-header.ndjson
	assert_success
}

@test "the validator agrees with jansson on tricky JSON" {
	run json-agree < "$FIXTURES/json-cases.txt"
	assert_success
	assert_output_contains "agree on"
}

@test "a write error on stdout is reported, not ignored" {
	good_stream 10 > in.ndjson
	run sh -c 'stream-relay < in.ndjson > /dev/full'
	assert_failure 1
	assert_output_contains "write error"
}
