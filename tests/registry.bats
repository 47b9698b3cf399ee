#!/usr/bin/env bats
# The connection registry (libcommon/registry.c, vault.c): env, file, vault.
# A unique planted password must never show in any output.

load test_helper

SECRET="Pl4nted-s3cret-$$"

teardown() {
	if [ -n "${vault_pid:-}" ]; then
		kill "$vault_pid" 2>/dev/null || true
		wait "$vault_pid" 2>/dev/null || true
	fi
	common_teardown
}

# manifest_with TYPE: write_manifest with both connections of that type.
manifest_with() {
	write_manifest
	sed -i "s/^  connection_id: \(.*\)/  connection_id: \1\n  connection_type: $1/" m.yaml
}

# start_vault SECRETS_JSON: run tests/tools/vault-kv.py; sets VAULT_ADDR.
start_vault() {
	printf '%s\n' "$1" > secrets.json
	python3 "$BATS_TEST_DIRNAME/tools/vault-kv.py" secrets.json "tok-$$" port vault.log &
	vault_pid=$!
	for _ in $(seq 1 100); do
		[ -s port ] && break
		sleep 0.05
	done
	[ -s port ] || flunk "vault-kv did not start"
	VAULT_ADDR="http://127.0.0.1:$(cat port)"
	export VAULT_ADDR
}

@test "env: the URL is parsed, percent escapes decoded, secrets redacted" {
	manifest_with env
	export DPONE_CONN_MSSQL_DWH="mssql://etl%40corp:${SECRET}%21@db.example:14330/dwh?appname=dpone"
	export DPONE_CONN_KAFKA_CLUSTER="kafka://svc:${SECRET}@k1:9092,k2:9093?security_protocol=SASL_SSL&sasl_mechanism=PLAIN"
	run dpone-plan --print-manifest m.yaml
	assert_success
	refute_output_contains "$SECRET"
	src=$(echo "$output" | jq -c '.connections.source | {host, port, database, user, password, params}')
	[ "$src" = '{"host":"db.example","port":14330,"database":"dwh","user":"etl@corp","password":"***","params":{"appname":"dpone"}}' ] || flunk "source: $src"
	sink=$(echo "$output" | jq -c '.connections.sink | {brokers, params}')
	[ "$sink" = '{"brokers":"k1:9092,k2:9093","params":{"security_protocol":"SASL_SSL","sasl_mechanism":"PLAIN","sasl_username":"svc","sasl_password":"***"}}' ] || flunk "sink: $sink"
}

@test "env: a missing variable names it, exit 10" {
	manifest_with env
	export DPONE_CONN_KAFKA_CLUSTER="kafka://k1:9092"
	run dpone-extract m.yaml
	assert_failure 10
	assert_output "dpone-extract: connection mssql_dwh: DPONE_CONN_MSSQL_DWH is not set (it holds the connection URL)"
}

@test "env: a bad URL is refused without echoing it" {
	manifest_with env
	export DPONE_CONN_MSSQL_DWH="sa:${SECRET}@db:1433"
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "not a URL"
	refute_output_contains "$SECRET"
	export DPONE_CONN_MSSQL_DWH="mssql://sa:${SECRET}@db:99999/x"
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "port is not a number from 1 to 65535"
	refute_output_contains "$SECRET"
	export DPONE_CONN_MSSQL_DWH="mssql://sa:${SECRET}%zz@db/x"
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "bad escape in user or password"
	refute_output_contains "$SECRET"
}

@test "env: a connection of the wrong kind is refused" {
	manifest_with env
	export DPONE_CONN_MSSQL_DWH="kafka://k1:9092"
	run dpone-extract m.yaml
	assert_failure 2
	assert_output_contains "connection mssql_dwh (env DPONE_CONN_MSSQL_DWH) is a kafka connection, but a mssql one is needed here"
}

@test "file: connections by URL or by fields, from --registry" {
	manifest_with file
	cat > reg.yaml <<YAML
connections:
  mssql_dwh:
    type: mssql
    host: db.example
    port: 1444
    user: etl
    password: "$SECRET"
    database: dwh
    tds_version: "7.4"
  kafka_cluster:
    url: kafka://k1:9092
    client_id: dpone-test
YAML
	chmod 600 reg.yaml
	run dpone-plan --registry reg.yaml --print-manifest m.yaml
	assert_success
	refute_output_contains "$SECRET"
	[ "$(echo "$output" | jq -r .connections.source.origin)" = "file reg.yaml" ]
	[ "$(echo "$output" | jq -r .connections.source.port)" = 1444 ]
	[ "$(echo "$output" | jq -r .connections.source.params.tds_version)" = 7.4 ]
	[ "$(echo "$output" | jq -r .connections.sink.params.client_id)" = dpone-test ]
}

@test "file: DPONE_REGISTRY, then ./.dpone/connections.yaml, then ~/.config/dpone" {
	manifest_with file
	printf 'connections:\n  mssql_dwh: {url: "mssql://a@h1/d"}\n  kafka_cluster: {url: "kafka://k:1"}\n' > reg.yaml
	chmod 600 reg.yaml
	mkdir -p "$HOME/.config/dpone"
	sed 's/h1/h3/' reg.yaml > "$HOME/.config/dpone/connections.yaml"
	chmod 600 "$HOME/.config/dpone/connections.yaml"
	run dpone-plan --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.host)" = h3 ]
	mkdir .dpone
	sed 's/h1/h2/' reg.yaml > .dpone/connections.yaml
	chmod 600 .dpone/connections.yaml
	run dpone-plan --print-manifest m.yaml
	[ "$(echo "$output" | jq -r .connections.source.host)" = h2 ]
	DPONE_REGISTRY=reg.yaml run dpone-plan --print-manifest m.yaml
	[ "$(echo "$output" | jq -r .connections.source.host)" = h1 ]
}

@test "file: a registry others can read is refused" {
	manifest_with file
	printf 'connections:\n  mssql_dwh: {url: "mssql://a@h/d"}\n  kafka_cluster: {url: "kafka://k:1"}\n' > reg.yaml
	chmod 644 reg.yaml
	run dpone-extract --registry reg.yaml m.yaml
	assert_failure 2
	assert_output_contains "reg.yaml: registry holds secrets but group or others may access it (mode 644); run chmod 600 reg.yaml"
}

@test "file: a registry another user owns is refused" {
	manifest_with file
	printf 'connections:\n  mssql_dwh: {url: "mssql://a@h/d"}\n  kafka_cluster: {url: "kafka://k:1"}\n' > reg.yaml
	chmod 600 reg.yaml
	chown nobody reg.yaml
	run dpone-extract --registry reg.yaml m.yaml
	assert_failure 2
	assert_output_contains "reg.yaml: registry holds secrets but belongs to uid $(id -u nobody), not to the user running dpone (uid $(id -u)); run chown $(id -u) reg.yaml"
}

@test "file: a missing entry or file is a connection error" {
	manifest_with file
	printf 'connections:\n  kafka_cluster: {url: "kafka://k:1"}\n' > reg.yaml
	chmod 600 reg.yaml
	run dpone-extract --registry reg.yaml m.yaml
	assert_failure 10
	assert_output_contains "reg.yaml: no connection named mssql_dwh"
	run dpone-extract --registry nosuch.yaml m.yaml
	assert_failure 10
	assert_output_contains "nosuch.yaml: No such file or directory"
	run dpone-extract m.yaml
	assert_failure 10
	assert_output_contains "connection mssql_dwh: no registry file"
}

@test "file: a malformed entry is a usage error naming it" {
	manifest_with file
	printf 'connections:\n  mssql_dwh: {type: oracle, host: h}\n' > reg.yaml
	chmod 600 reg.yaml
	run dpone-extract --registry reg.yaml m.yaml
	assert_failure 2
	assert_output_contains "connection mssql_dwh (file reg.yaml): needs url, or type mssql|kafka|postgres"
	printf 'mssql_dwh: {url: "mssql://h"}\n' > reg.yaml
	run dpone-extract --registry reg.yaml m.yaml
	assert_failure 2
	assert_output_contains "expected a top-level 'connections:' mapping"
}

@test "vault: KV v2 secrets are read with the token, redacted in output" {
	manifest_with vault
	start_vault "{\"secret/dpone/connections/mssql_dwh\": {\"host\": \"db.vault\", \"type\": \"mssql\", \"user\": \"etl\", \"password\": \"$SECRET\"},
	              \"secret/dpone/connections/kafka_cluster\": {\"url\": \"kafka://kv:9092\", \"sasl_password\": \"$SECRET\"}}"
	export VAULT_TOKEN="tok-$$"
	run dpone-plan --print-manifest m.yaml
	assert_success
	refute_output_contains "$SECRET"
	refute_output_contains "tok-$$"
	[ "$(echo "$output" | jq -r .connections.source.host)" = db.vault ]
	[ "$(echo "$output" | jq -r .connections.source.origin)" = "vault secret/data/dpone/connections/mssql_dwh" ]
	[ "$(echo "$output" | jq -r .connections.sink.params.sasl_password)" = "***" ]
	assert_file_contains vault.log "/v1/secret/data/dpone/connections/mssql_dwh"
}

@test "vault: mount and path prefix are configurable; token from a file" {
	manifest_with vault
	start_vault '{"kv/etl/mssql_dwh": {"url": "mssql://u@h9/d"}, "kv/etl/kafka_cluster": {"url": "kafka://k:1"}}'
	printf 'tok-%s\n' "$$" > token
	chmod 600 token
	export VAULT_TOKEN_FILE="$PWD/token" DPONE_VAULT_MOUNT=kv DPONE_VAULT_PREFIX=etl
	run dpone-plan --print-manifest m.yaml
	assert_success
	[ "$(echo "$output" | jq -r .connections.source.host)" = h9 ]
}

@test "vault: a token file others can read, or another user's, is refused with the command that fixes it" {
	manifest_with vault
	start_vault '{"secret/dpone/connections/mssql_dwh": {"url": "mssql://u@h9/d"}}'
	printf 'tok-%s\n' "$$" > token
	chmod 644 token
	export VAULT_TOKEN_FILE="$PWD/token"
	run dpone-plan --print-manifest m.yaml
	assert_failure 2
	assert_output_contains "token: Vault token file holds secrets but group or others may access it (mode 644); run chmod 600 $PWD/token"
	chmod 600 token
	chown nobody token
	run dpone-plan --print-manifest m.yaml
	assert_failure 2
	assert_output_contains "Vault token file holds secrets but belongs to uid $(id -u nobody), not to the user running dpone (uid $(id -u)); run chown $(id -u) $PWD/token"
}

@test "vault: a wrong token, a missing secret, no server" {
	manifest_with vault
	start_vault '{"secret/dpone/connections/kafka_cluster": {"url": "kafka://k:1"}}'
	export VAULT_TOKEN=wrong
	run dpone-extract m.yaml
	assert_failure 10
	assert_output_contains "vault secret/data/dpone/connections/mssql_dwh: permission denied (HTTP 403)"
	export VAULT_TOKEN="tok-$$"
	run dpone-extract m.yaml
	assert_failure 10
	assert_output_contains "vault secret/data/dpone/connections/mssql_dwh: no such secret (HTTP 404)"
	kill "$vault_pid"; wait "$vault_pid" 2>/dev/null || true; vault_pid=
	run dpone-extract m.yaml
	assert_failure 10
	assert_output_contains "vault: cannot reach VAULT_ADDR"
	unset VAULT_ADDR
	run dpone-extract m.yaml
	assert_failure 10
	assert_output_contains "vault: VAULT_ADDR is not set"
}

@test "vault: no token at all is a clear error" {
	manifest_with vault
	export VAULT_ADDR=http://127.0.0.1:9
	run dpone-extract m.yaml
	assert_failure 10
	assert_output_contains "vault: no token"
}
