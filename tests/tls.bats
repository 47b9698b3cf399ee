#!/usr/bin/env bats
# The source connection's encryption (encrypt, ca_file,
# trust_server_certificate) and named instances, against the SQL Server
# stand-in: it offers TLS inside PRELOGIN with a certificate tests/env made
# for 127.0.0.1 and mssqld.test (DPONE_TEST_MSSQL_CA is its CA), counts
# the logins and sessions that came over TLS, and can force encryption
# (its control port: so this suite always runs on the stand-in).

load test_helper
load stand_ins

stand_ins_per_file --private mssql

setup() {
	common_setup
	load_env
	T="tls$BATS_TEST_NUMBER"
	sql <<SQL
DROP TABLE IF EXISTS $T
CREATE TABLE $T (id int NOT NULL PRIMARY KEY, v nvarchar(10))
INSERT INTO $T VALUES (1, N'a'), (2, N'b')
SQL
	cat > m.yaml <<YAML
name: tls_$T
source: {type: mssql, connection_id: mssql_dwh, table: {name: $T}}
sink: {type: kafka, connection_id: kafka_cluster, topic: t, strategy: {mode: full_refresh}}
YAML
	export DPONE_CONN_KAFKA_CLUSTER=kafka://127.0.0.1:9
	BASE=$DPONE_CONN_MSSQL_DWH
}

teardown() {
	control "$MSSQLD_CONTROL" "tls force off" > /dev/null
	common_teardown
}

# with QUERY: the source URL with this query string
with() {
	export DPONE_CONN_MSSQL_DWH="$BASE?$1"
}

sessions() {
	control "$MSSQLD_CONTROL" tls-sessions | sed -n 's/.*sessions=\([0-9]*\).*/\1/p'
}

@test "encrypt=require with the server's CA: the whole session is encrypted and the certificate verified" {
	before=$(sessions)
	with "encrypt=require&ca_file=$DPONE_TEST_MSSQL_CA"
	run dpone-extract m.yaml
	assert_success
	assert_output_contains '["end",{"rows":2'
	[ "$(sessions)" -gt "$before" ] || flunk "no encrypted session: $(control "$MSSQLD_CONTROL" tls-sessions)"
	# the ranges of a parallel run log in encrypted too
	before=$(sessions)
	run dpone-extract --parallel 2 m.yaml
	assert_success
	[ "$(sessions)" -ge $((before + 3)) ] || flunk "$(control "$MSSQLD_CONTROL" tls-sessions)"
}

@test "a certificate another CA signed: refused, one line naming ca_file; trust_server_certificate=true skips the check" {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout other.key -out other.pem \
		-days 1 -subj "/CN=another CA" 2> /dev/null
	with "encrypt=require&ca_file=$PWD/other.pem"
	run dpone-extract m.yaml
	assert_failure 4
	assert_output_contains "the server's certificate did not verify against ca_file $PWD/other.pem"
	[ "${#lines[@]}" -eq 1 ] || flunk "more than one line: $output"
	# without ca_file, require checks against the system's CAs, which do not know the test CA
	with "encrypt=require"
	run dpone-extract m.yaml
	assert_failure 4
	assert_output_contains "did not verify against the system's CA certificates"
	with "encrypt=require&trust_server_certificate=true"
	run dpone-extract m.yaml
	assert_success
}

@test "a host name the certificate does not carry (localhost): refused" {
	export DPONE_CONN_MSSQL_DWH="${BASE/127.0.0.1/localhost}?encrypt=require&ca_file=$DPONE_TEST_MSSQL_CA"
	run dpone-extract m.yaml
	assert_failure 4
	assert_output_contains "or does not name localhost"
}

@test "a server that forces encryption refuses encrypt=off, takes request and require" {
	control "$MSSQLD_CONTROL" "tls force on" > /dev/null
	with "encrypt=off"
	run dpone-extract m.yaml
	assert_failure 4
	assert_output_contains "encrypt=off: a server that requires encryption"
	before=$(sessions)
	with "encrypt=request"
	run dpone-extract m.yaml
	assert_success
	[ "$(sessions)" -gt "$before" ]
}

@test "encrypt=strict is unavailable with this FreeTDS (exit 9); bad values are exit 10 naming the parameter" {
	with "encrypt=strict"
	run dpone-extract m.yaml
	assert_failure 9
	assert_output_contains "encrypt=strict (TDS 8.0) needs FreeTDS 1.4 or later"
	with "encrypt=yes"
	run dpone-extract m.yaml
	assert_failure 10
	assert_output_contains "encrypt 'yes': expected off, request, require or strict"
	with "encrypt=require&ca_file=/nonexistent/ca.pem"
	run dpone-extract m.yaml
	assert_failure 10
	assert_output_contains "ca_file /nonexistent/ca.pem: No such file or directory"
	with "trust_server_certificate=maybe"
	run dpone-extract m.yaml
	assert_failure 10
}

@test "a named instance: its port comes from the SQL Server Browser (UDP 1434)" {
	/usr/bin/python3 - "$DPONE_TEST_MSSQL_PORT" <<'PY' > browser.out 2>&1 &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 1434))
print("ready", flush=True)
s.settimeout(30)
while True:
    data, peer = s.recvfrom(2048)
    # SSRP CLNT_UCAST_INST: 0x04 and the instance name; SVR_RESP: 0x05, length, the instance's settings
    if data[:1] == b"\x04" and data[1:].rstrip(b"\0").upper() == b"DWH2":
        body = ("ServerName;MSSQLD;InstanceName;DWH2;IsClustered;No;Version;15.0.4000.0;tcp;%s;;" % sys.argv[1]).encode()
        s.sendto(b"\x05" + len(body).to_bytes(2, "little") + body, peer)
PY
	browser=$!
	for _ in $(seq 1 50); do grep -q ready browser.out && break; sleep 0.1; done
	grep -q ready browser.out || flunk "the browser stand-in did not start: $(cat browser.out)"
	export DPONE_CONN_MSSQL_DWH="${BASE/:$DPONE_TEST_MSSQL_PORT/}?instance=DWH2"
	run dpone-extract m.yaml
	assert_success
	assert_output_contains '["end",{"rows":2'
	export DPONE_CONN_MSSQL_DWH="${BASE/:$DPONE_TEST_MSSQL_PORT/}?instance=NOPE&"
	run dpone-extract m.yaml
	kill "$browser" 2> /dev/null
	assert_failure 4
	assert_output_contains "instance NOPE: its port is asked of the SQL Server Browser on 127.0.0.1, UDP 1434"
}
