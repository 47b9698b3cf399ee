# Shared by every .bats file (after rbenv's test/test_helper.bash): a private
# temporary directory per test, the programs under test on PATH, and small
# assert_* helpers that print what they saw when they fail.

: "${DPONE_BIN:?run the tests through make check (DPONE_BIN is not set)}"
: "${DPONE_TEST_BIN:?run the tests through make check (DPONE_TEST_BIN is not set)}"
# shellcheck disable=SC2034 # used by the .bats files
FIXTURES="$BATS_TEST_DIRNAME/fixtures"
# shellcheck disable=SC2034
SRCDIR="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"

# A private temporary directory as cwd and HOME, the programs on PATH,
# and no connection settings inherited from the caller.
common_setup() {
	TEST_TMP="$(mktemp -d "${BATS_TMPDIR:-/tmp}/dpone-test.XXXXXX")"
	cd "$TEST_TMP" || return 1
	export HOME="$TEST_TMP/home"
	mkdir -p "$HOME"
	PATH="$DPONE_BIN:$DPONE_TEST_BIN:$PATH"
	# No connection settings leak in from the caller's environment.
	unset DPONE_REGISTRY VAULT_ADDR VAULT_TOKEN VAULT_TOKEN_FILE DPONE_VAULT_MOUNT DPONE_VAULT_PREFIX
	for var in $(env | sed -n 's/^\(DPONE_CONN_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$var"; done
}

setup() {
	common_setup
}

# A .bats file that needs more cleanup defines its own teardown and calls this.
common_teardown() {
	cd / && rm -rf "$TEST_TMP"
}

teardown() {
	common_teardown
}

flunk() {
	{
		[ $# -eq 0 ] && cat - || echo "$@"
		echo "--- exit status: ${status:-unset}"
		echo "--- output:"
		printf '%s\n' "${output:-}"
	} >&2
	return 1
}

assert_success() {
	[ "$status" -eq 0 ] || flunk "expected success, got exit status $status"
}

# assert_failure [CODE]: non-zero, and CODE exactly when given.
assert_failure() {
	if [ $# -gt 0 ]; then
		[ "$status" -eq "$1" ] || flunk "expected exit status $1, got $status"
	else
		[ "$status" -ne 0 ] || flunk "expected failure, got success"
	fi
}

assert_output() {
	[ "$output" = "$1" ] || flunk "expected output: $1"
}

assert_output_contains() {
	case $output in
	*"$1"*) ;;
	*) flunk "expected output to contain: $1" ;;
	esac
}

refute_output_contains() {
	case $output in
	*"$1"*) flunk "expected output not to contain: $1" ;;
	*) ;;
	esac
}

# assert_line [INDEX] LINE (rbenv's): some line of output is LINE, or line
# INDEX (from 0) is.
assert_line() {
	if [ $# -gt 1 ]; then
		[ "${lines[$1]:-}" = "$2" ] || flunk "expected line $1 to be: $2" "(it is: ${lines[$1]:-<none>})"
		return
	fi
	local line
	for line in "${lines[@]}"; do
		[ "$line" != "$1" ] || return 0
	done
	flunk "expected a line: $1"
}

# refute_line LINE: no line of output is LINE.
refute_line() {
	local line
	for line in "${lines[@]}"; do
		[ "$line" != "$1" ] || flunk "expected no line: $1"
	done
}

# assert_line_count N: output has exactly N lines.
assert_line_count() {
	[ "${#lines[@]}" -eq "$1" ] || flunk "expected $1 lines, got ${#lines[@]}"
}

assert_file_contains() {
	grep -qF -- "$2" "$1" || flunk "expected $1 to contain: $2"
}

refute_file_contains() {
	! grep -qF -- "$2" "$1" || flunk "expected $1 not to contain: $2"
}

# A minimal valid manifest in ./m.yaml; extra YAML lines can be appended.
write_manifest() {
	cat > m.yaml <<YAML
name: orders_job
source:
  type: mssql
  connection_id: mssql_dwh
  table:
    name: orders
sink:
  type: kafka
  connection_id: kafka_cluster
  topic: dwh.orders
  strategy:
    mode: full_refresh
YAML
}

# Connection URLs for write_manifest's connection ids.
use_env_connections() {
	export DPONE_CONN_MSSQL_DWH="mssql://loader:${1:-pw}@127.0.0.1:1433/dwh"
	export DPONE_CONN_KAFKA_CLUSTER="kafka://127.0.0.1:9092"
}

# elapsed_ms SINCE-NS: milliseconds since a `date +%s%N` stamp (for upper
# bounds with slack, never performance thresholds).
elapsed_ms() {
	echo $((($(date +%s%N) - $1) / 1000000))
}
