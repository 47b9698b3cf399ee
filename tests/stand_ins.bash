# Helpers for suites that talk to the stand-ins (or real servers, see
# tests/README.md). Load after test_helper. Each .bats file starts the
# servers it needs once (setup_file) and stops them at the end: it says
# which with stand_ins_per_file.

# stand_ins_per_file [--private] SERVICE... [--faults SERVICE...]: define
# this file's setup_file, which starts SERVICEs once (a real server where
# DPONE_TEST_* names one; --private: always the stand-in, for the suites
# that test the stand-ins themselves) and, after --faults, private
# stand-ins with control ports for fault injection; and its teardown_file,
# which stops them all.
stand_ins_per_file() {
	FILE_PRIVATE=0
	FILE_SERVICES=
	FILE_FAULT_SERVICES=
	local into=FILE_SERVICES
	for arg in "$@"; do
		case $arg in
		--private) FILE_PRIVATE=1 ;;
		--faults) into=FILE_FAULT_SERVICES ;;
		*) printf -v "$into" '%s %s' "${!into}" "$arg" ;;
		esac
	done
	setup_file() {
		if [ "$FILE_PRIVATE" -eq 1 ]; then
			unset DPONE_TEST_MSSQL_URL DPONE_TEST_KAFKA_BOOTSTRAP DPONE_TEST_PG_URL
		fi
		# shellcheck disable=SC2086 # service names have no blanks
		start_stand_ins $FILE_SERVICES
		# shellcheck disable=SC2086
		[ -z "$FILE_FAULT_SERVICES" ] || start_fault_stand_ins $FILE_FAULT_SERVICES
	}
	teardown_file() {
		stop_stand_ins
	}
}

# start_stand_ins SERVICE...: tests/env up into the file's temp dir.
start_stand_ins() {
	export ENV_DIR="$BATS_FILE_TMPDIR/env"
	DPONE_TEST_BIN="$DPONE_TEST_BIN" "$BATS_TEST_DIRNAME/env" up "$ENV_DIR" "$@"
}

# stop_stand_ins: stop this file's stand-ins, the fault ones too.
stop_stand_ins() {
	"$BATS_TEST_DIRNAME/env" down "$BATS_FILE_TMPDIR/env"
	if [ -d "$BATS_FILE_TMPDIR/faults" ]; then
		"$BATS_TEST_DIRNAME/env" down "$BATS_FILE_TMPDIR/faults"
	fi
}

# start_fault_stand_ins SERVICE...: private stand-ins for the tests that
# inject faults, never real servers (faults need the control ports).
start_fault_stand_ins() {
	DPONE_TEST_MSSQL_URL='' DPONE_TEST_KAFKA_BOOTSTRAP='' DPONE_TEST_PG_URL='' DPONE_TEST_BIN="$DPONE_TEST_BIN" \
		"$BATS_TEST_DIRNAME/env" up "$BATS_FILE_TMPDIR/faults" "$@"
}

# use_fault_stand_ins: point this test at them, with no fault left over.
use_fault_stand_ins() {
	unset MSSQLD_CONTROL KAFKAD_CONTROL
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/faults/env"
	if [ -n "${MSSQLD_CONTROL:-}" ]; then
		control "$MSSQLD_CONTROL" "fault clear" > /dev/null
	fi
	if [ -n "${KAFKAD_CONTROL:-}" ]; then
		control "$KAFKAD_CONTROL" "errors clear 0" > /dev/null
		control "$KAFKAD_CONTROL" "broker up -1" > /dev/null
	fi
}

load_env() {
	# Control ports exist only for stand-ins this file started.
	unset MSSQLD_CONTROL KAFKAD_CONTROL
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/env/env"
	# Faults are one test's business: none carries over to the next.
	if [ -n "${MSSQLD_CONTROL:-}" ]; then
		control "$MSSQLD_CONTROL" "fault clear" > /dev/null
	fi
}

# sql [DB]: run T-SQL from stdin with bsqldb; rows as a|b|c lines.
sql() {
	bsqldb -q -t '|' -S mssql -U "$DPONE_TEST_MSSQL_USER" -P "$DPONE_TEST_MSSQL_PASSWORD" \
		-D "${1:-$DPONE_TEST_MSSQL_DATABASE}"
}

# py CODE: python with `conn` open through pymssql (TDS 7.3, its newest).
py() {
	/usr/bin/python3 - "$@" <<PY
import pymssql, decimal, datetime, sys
conn = pymssql.connect(server="$DPONE_TEST_MSSQL_HOST", port=int("$DPONE_TEST_MSSQL_PORT"),
                       user="$DPONE_TEST_MSSQL_USER", password="$DPONE_TEST_MSSQL_PASSWORD",
                       database="$DPONE_TEST_MSSQL_DATABASE", tds_version="7.3", autocommit=True)
cur = conn.cursor()
$(cat)
PY
}

# control HOST:PORT COMMAND: one line to a stand-in's control port.
control() {
	local host=${1%:*} port=${1##*:} reply
	exec 9<>"/dev/tcp/$host/$port"
	printf '%s\n' "$2" >&9
	read -r reply <&9
	exec 9<&-
	[ "$reply" = ok ] || [ "${reply#ok }" != "$reply" ] || { echo "control: $reply" >&2; return 1; }
	echo "$reply"
}

# For `run bash -c "... | sql"`.
export -f sql py control

# open_transaction NAME SQL...: a second session (python3-pymssql) that
# runs BEGIN TRANSACTION and the statements, then waits, holding the
# transaction open, until commit_transaction NAME; NAME.ready appears once
# it holds it. For late-commit tests: what it wrote is invisible to every
# other session until then.
open_transaction() {
	local name=$1
	shift
	rm -f "$name.ready" "$name.go" "$name.done"
	/usr/bin/python3 - "$name" "$@" > "$name.log" 2>&1 <<PY &
import os, sys, time, pymssql
name = sys.argv[1]
conn = pymssql.connect(server="$DPONE_TEST_MSSQL_HOST", port=int("$DPONE_TEST_MSSQL_PORT"),
                       user="$DPONE_TEST_MSSQL_USER", password="$DPONE_TEST_MSSQL_PASSWORD",
                       database="$DPONE_TEST_MSSQL_DATABASE", tds_version="7.3", autocommit=True)
cur = conn.cursor()
cur.execute("BEGIN TRANSACTION")
for stmt in sys.argv[2:]:
    cur.execute(stmt)
open(name + ".ready", "w").close()
deadline = time.time() + 120
while not os.path.exists(name + ".go") and time.time() < deadline:
    time.sleep(0.05)
cur.execute("COMMIT")
open(name + ".done", "w").close()
PY
	for _ in $(seq 1 200); do
		[ ! -f "$name.ready" ] || return 0
		sleep 0.05
	done
	echo "open_transaction $name: the session did not start: $(cat "$name.log")" >&2
	return 1
}

# commit_transaction NAME: let open_transaction NAME commit, and wait for it.
commit_transaction() {
	touch "$1.go"
	for _ in $(seq 1 200); do
		[ ! -f "$1.done" ] || return 0
		sleep 0.05
	done
	echo "commit_transaction $1: no commit: $(cat "$1.log")" >&2
	return 1
}
