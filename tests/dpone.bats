#!/usr/bin/env bats
# The dpone wrapper: dispatch, help, and `batch run` supervision. The
# supervision tests put the real wrapper beside fake stage programs
# (tests/fixtures/fake-stages) whose exit codes the test chooses.

load test_helper

# fake_bin: a directory with the real wrapper and the fake stages.
fake_bin() {
	mkdir -p fakebin
	cp "$DPONE_BIN/dpone" fakebin/
	cp "$FIXTURES"/fake-stages/dpone-* fakebin/
	export FAKE_LOG="$PWD/log"
	: > "$FAKE_LOG"
	write_manifest
}

@test "--help and --version" {
	run dpone --help
	assert_success
	assert_output_contains "usage: dpone [-hV] [--registry FILE] COMMAND [ARG...]"
	run dpone --version
	assert_success
	assert_output_contains "dpone 0."
}

@test "no command is a usage error" {
	run dpone
	assert_failure 2
	assert_output_contains "usage: dpone"
}

@test "an unknown command or option is a usage error" {
	run dpone frobnicate
	assert_failure 2
	assert_output "dpone: unknown command 'frobnicate' (see dpone --help)"
	run dpone ../../bin/sh
	assert_failure 2
	run dpone --bogus
	assert_failure 2
	assert_output_contains "unknown option --bogus"
}

@test "dpone CMD runs dpone-CMD from the wrapper's own directory" {
	write_manifest
	use_env_connections
	run dpone plan --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .name)" = orders_job ]
}

@test "dpone finds its stages through a symlink to it" {
	write_manifest
	use_env_connections
	mkdir elsewhere
	ln -s "$DPONE_BIN/dpone" elsewhere/dpone
	run env PATH=/usr/bin:/bin elsewhere/dpone plan --print-manifest m.yaml
	assert_success
}

@test "--registry is passed to the stages through the environment" {
	write_manifest
	sed -i "s/^  connection_id: \(.*\)/  connection_id: \1\n  connection_type: file/" m.yaml
	printf 'connections:\n  mssql_dwh: {url: "mssql://a@h7/d"}\n  kafka_cluster: {url: "kafka://k:1"}\n' > reg.yaml
	chmod 600 reg.yaml
	run dpone --registry reg.yaml plan --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.host)" = h7 ]
}

@test "every command the wrapper runs itself takes --help, and dpone help CMD works for it" {
	for cmd in batch runs doctor schema; do
		run dpone "$cmd" --help
		assert_success
		[[ "${lines[0]}" == "usage: dpone $cmd "* ]] || flunk "dpone $cmd --help: $output"
		assert_output_contains "See dpone(1)"
		run env MANPAGER=cat dpone help "$cmd"
		assert_success
		assert_output_contains "DPONE(1)"
	done
	run dpone batch run m.yaml --help
	assert_success
	assert_output_contains "usage: dpone batch run MANIFEST"
	run dpone schema --help
	assert_line 1 "       dpone schema physical-plan --manifest MANIFEST [--format md|json] [--throughput N] [--apply]"
}

@test "an operand too many is an error in every command, never ignored" {
	write_manifest
	use_env_connections
	for cmd in "dpone-state m.yaml get extra" "dpone-plan m.yaml extra" "dpone-extract m.yaml extra" \
		"dpone runs list m.yaml extra" "dpone runs show m.yaml a b" "dpone schema infer --manifest m.yaml extra" \
		"dpone doctor m.yaml extra" "dpone batch run m.yaml extra"; do
		run $cmd
		assert_failure 2
		[[ "$output" == *"too many operands"* || "$output" == *"at most"* || "$output" == *"more than one"* ]] ||
			flunk "$cmd: $output"
	done
}

@test "dpone help CMD shows the manual page" {
	run env MANPAGER=cat dpone help extract
	assert_success
	assert_output_contains "EXIT STATUS"
	assert_output_contains "dpone-extract"
	run env MANPAGER=cat dpone help
	assert_success
	assert_output_contains "batch run"
}

@test "batch run with this build's stages says which stage failed and commits nothing" {
	write_manifest
	# Nothing listens on port 9: the source is down, so the producer gets
	# an empty stream.
	export DPONE_CONN_MSSQL_DWH="mssql://u:p@127.0.0.1:9/dwh"
	export DPONE_CONN_KAFKA_CLUSTER="kafka://127.0.0.1:9"
	run dpone batch run m.yaml
	assert_failure 4
	assert_output_contains "dpone-produce: stdin:0: empty stream: no header message"
	assert_output_contains "dpone: batch run: dpone-produce exited 3 (stream), a consequence of dpone-extract"
	# The last line is the cause: the stage and its first error line.
	[[ "${lines[${#lines[@]} - 1]}" == "dpone: batch run failed: dpone-extract exited 4 (source): cannot connect to mssql_dwh (127.0.0.1:9): "*"; state not advanced" ]] ||
		flunk "last line: ${lines[${#lines[@]} - 1]}"
}

@test "batch run: a bad manifest fails before any stage starts" {
	write_manifest
	sed -i 's/mode: full_refresh/mode: nope/' m.yaml
	run dpone batch run m.yaml
	assert_failure 2
	assert_output_contains "sink.strategy.mode: 'nope' is not one of"
}

@test "batch run: all stages succeed, then state is committed with the summary" {
	fake_bin
	run fakebin/dpone batch run m.yaml
	assert_success
	assert_file_contains log "extract m.yaml"
	assert_file_contains log "produce m.yaml"
	assert_file_contains log "state m.yaml commit"
	assert_file_contains log.commit-input '["end",{"rows":1}]'
	# Locked first, unlocked last, the same run id in each.
	grep '^state' log > state.log
	[ "$(head -n 1 state.log | cut -d' ' -f2-4)" = "-q m.yaml lock" ] || flunk "$(cat log)"
	[ "$(tail -n 1 log | cut -d' ' -f2-4)" = "-q m.yaml unlock" ] || flunk "$(cat log)"
	run_id=$(head -n 1 state.log | sed -n 's/.*--run-id \([^ ]*\).*/\1/p')
	assert_file_contains log "extract m.yaml --run-id $run_id"
	assert_file_contains log "unlock --run-id $run_id"
}

@test "batch run: the committed watermark is where the extract starts; --from/--to override it" {
	fake_bin
	FAKE_WATERMARK='"2026-11-26T08:00:00.1234567"' run fakebin/dpone batch run m.yaml
	assert_success
	assert_file_contains log '--from "2026-11-26T08:00:00.1234567"'
	: > log
	FAKE_WATERMARK=5 run fakebin/dpone batch run --from 2 --to 9 m.yaml
	assert_success
	assert_file_contains log "--from 2 --to 9"
}

@test "batch run: a job locked by another run does not start" {
	fake_bin
	FAKE_LOCK_RC=7 run fakebin/dpone batch run m.yaml
	assert_failure 7
	refute_file_contains log "extract"
	refute_file_contains log "unlock"
}

@test "batch run: extract fails -> its exit code, no commit" {
	fake_bin
	FAKE_EXTRACT_RC=4 run fakebin/dpone batch run m.yaml
	assert_failure 4
	assert_output_contains "dpone-extract exited 4 (source)"
	assert_output_contains "state not advanced"
	refute_file_contains log "state m.yaml"
}

@test "batch run: produce fails -> its exit code, no commit" {
	fake_bin
	FAKE_PRODUCE_RC=5 run fakebin/dpone batch run m.yaml
	assert_failure 5
	assert_output_contains "dpone-produce exited 5 (sink)"
	refute_file_contains log "state m.yaml"
}

@test "batch run: both fail -> the first stage's code is the run's" {
	fake_bin
	FAKE_EXTRACT_RC=4 FAKE_PRODUCE_RC=3 run fakebin/dpone batch run m.yaml
	assert_failure 4
	assert_output_contains "dpone-extract exited 4 (source)"
	assert_output_contains "dpone-produce exited 3 (stream)"
}

@test "batch run: stages exit 0 but the stream has no end -> exit 3, no commit" {
	fake_bin
	FAKE_PRODUCE_NO_END=1 run fakebin/dpone batch run m.yaml
	assert_failure 3
	assert_output_contains "the stream did not reach its end message; state not advanced"
	refute_file_contains log "state m.yaml"
}

@test "batch run: a stage killed by a signal is reported, no commit" {
	fake_bin
	FAKE_EXTRACT_KILL=1 run fakebin/dpone batch run m.yaml
	assert_failure 1
	assert_output_contains "dpone-extract was killed by signal 9"
	refute_file_contains log "state m.yaml"
}

@test "batch run: a stage that dies of SIGPIPE because the next one failed is not the cause" {
	fake_bin
	cat > fakebin/dpone-extract <<'SH'
#!/bin/sh
echo "extract $*" >> "$FAKE_LOG"
echo '["header",{"protocol":1,"columns":[]}]'
sleep 1
# the producer is gone: this write raises SIGPIPE
yes '{"id":1}'
SH
	cat > fakebin/dpone-produce <<'SH'
#!/bin/sh
echo "produce $*" >> "$FAKE_LOG"
exit 5
SH
	chmod 755 fakebin/dpone-extract fakebin/dpone-produce
	run fakebin/dpone batch run m.yaml
	assert_failure 5
	assert_output "dpone: batch run failed: dpone-produce exited 5 (sink); state not advanced"
}

@test "batch run: a failed commit is reported with its code" {
	fake_bin
	FAKE_STATE_RC=7 run fakebin/dpone batch run m.yaml
	assert_failure 7
	assert_output_contains "dpone-state commit exited 7 (conflict)"
}

@test "batch run: a missing stage program is named" {
	fake_bin
	rm fakebin/dpone-produce
	run env PATH=/usr/bin:/bin fakebin/dpone batch run m.yaml
	assert_failure 2
	assert_output_contains "missing programs: dpone-produce"
}

@test "batch run --dry-run shows the pipeline and runs nothing" {
	fake_bin
	run fakebin/dpone batch run --dry-run m.yaml
	assert_success
	assert_output_contains "dpone-state m.yaml lock --run-id RUN"
	assert_output_contains "dpone-extract m.yaml --run-id RUN"
	assert_output_contains "dpone-state m.yaml commit --run-id RUN < SUMMARY"
	refute_file_contains log "extract"
}

@test "batch run: SIGTERM stops the stages, exit 130, no commit" {
	fake_bin
	# An odd duration, so only this test's stage matches it below.
	FAKE_EXTRACT_SLEEP=30.0$$ fakebin/dpone batch run m.yaml 2> err &
	pid=$!
	for _ in $(seq 1 100); do
		grep -q "produce" log && break
		sleep 0.05
	done
	sleep 0.2
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	[ "$status" -eq 130 ] || flunk "exit status $status: $(cat err)"
	assert_file_contains err "interrupted; state not advanced"
	refute_file_contains log "state m.yaml"
	# No stage is left running.
	! pgrep -fx "sleep 30.0$$" >/dev/null || { pkill -fx "sleep 30.0$$"; flunk "a stage was left running"; }
}

@test "batch run: no secret appears in any process's arguments" {
	fake_bin
	export DPONE_CONN_MSSQL_DWH="mssql://sa:Pl4nted-argv-$$@h/d"
	FAKE_PS="$PWD/ps.txt" run fakebin/dpone batch run m.yaml
	assert_success
	assert_file_contains ps.txt "dpone-extract m.yaml"
	refute_file_contains ps.txt "Pl4nted-argv-$$"
}

@test "batch run: usage errors" {
	run dpone batch
	assert_failure 2
	run dpone batch walk m.yaml
	assert_failure 2
	assert_output_contains "unknown subcommand 'walk'"
	run dpone batch run
	assert_failure 2
	assert_output_contains "missing MANIFEST"
	run dpone batch run --fast m.yaml
	assert_failure 2
}

@test "batch run: checks run between extract and produce; a failed check is the run's status" {
	fake_bin
	FAKE_CHECK_RC=8 run fakebin/dpone batch run m.yaml
	assert_failure 8
	assert_output_contains "dpone-check exited 8 (quality)"
	refute_file_contains log "state m.yaml commit"
	assert_file_contains log "check m.yaml"
}
