#!/usr/bin/env bats
# tests/kafkad: librdkafka's mock cluster behind a control port, checked
# with kcat producing and consuming over the real Kafka protocol.

load test_helper
load stand_ins

stand_ins_per_file --private kafka

setup() {
	common_setup
	load_env
	TOPIC="topic$BATS_TEST_NUMBER"
	control "$KAFKAD_CONTROL" "errors clear 0" > /dev/null
	control "$KAFKAD_CONTROL" "broker up -1" > /dev/null
}

@test "three brokers on loopback, listed by kcat" {
	run kcat -L -b "$DPONE_TEST_KAFKA_BOOTSTRAP"
	assert_success
	assert_output_contains "3 brokers:"
	[[ "$DPONE_TEST_KAFKA_BOOTSTRAP" =~ ^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$ ]] || flunk "$DPONE_TEST_KAFKA_BOOTSTRAP"
}

@test "topics are created with the given partitions" {
	run control "$KAFKAD_CONTROL" "topic create $TOPIC 4 3"
	assert_output "ok"
	run kcat -L -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC"
	assert_output_contains "topic \"$TOPIC\" with 4 partitions:"
}

@test "kcat produces keyed messages and consumes them back" {
	control "$KAFKAD_CONTROL" "topic create $TOPIC 3 1"
	seq 1 100 | sed 's/.*/k&\t{"n":&}/' > in.txt
	run kcat -P -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -K '\t' -l in.txt
	assert_success
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -f '%k\t%s\n' | sort -V > out.txt
	sort -V in.txt | cmp - out.txt
	# One key always lands on one partition.
	kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -f '%k %p\n' | sort -u | awk '{print $1}' | uniq -d > dup.txt
	[ ! -s dup.txt ] || flunk "a key on two partitions: $(cat dup.txt)"
}

@test "idempotent and transactional producers are accepted" {
	control "$KAFKAD_CONTROL" "topic create $TOPIC 1 3"
	printf 'a\nb\n' | kcat -P -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -X enable.idempotence=true -X acks=all
	run kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q
	assert_output "a
b"
	run kcat -P -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -X transactional.id=t$BATS_TEST_NUMBER <<< "c"
	assert_success
	assert_output_contains "Transaction successfully committed"
	run kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q -X isolation.level=read_committed
	assert_output "a
b
c"
}

@test "injected produce errors are retried by the client, then delivered" {
	control "$KAFKAD_CONTROL" "topic create $TOPIC 1 3"
	run control "$KAFKAD_CONTROL" "errors produce NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT"
	assert_output "ok"
	printf 'x\n' | kcat -P -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -X retry.backoff.ms=10
	run kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q
	assert_output "x"
}

@test "a non-retriable produce error fails the delivery" {
	control "$KAFKAD_CONTROL" "topic create $TOPIC 1 3"
	control "$KAFKAD_CONTROL" "errors produce MSG_SIZE_TOO_LARGE"
	run kcat -P -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" <<< "big"
	assert_failure
	assert_output_contains "Broker: Message size too large"
}

@test "all brokers down: delivery times out; back up: it goes through" {
	control "$KAFKAD_CONTROL" "topic create $TOPIC 1 1"
	control "$KAFKAD_CONTROL" "broker down -1"
	run kcat -P -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -X message.timeout.ms=1500 <<< "lost"
	assert_failure
	control "$KAFKAD_CONTROL" "broker up -1"
	run kcat -P -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -X message.timeout.ms=20000 <<< "kept"
	assert_success
	run kcat -C -b "$DPONE_TEST_KAFKA_BOOTSTRAP" -t "$TOPIC" -e -q
	assert_output "kept"
}

@test "control commands are checked" {
	run control "$KAFKAD_CONTROL" "errors produce NO_SUCH_ERROR"
	assert_failure
	assert_output_contains "unknown error name NO_SUCH_ERROR"
	run control "$KAFKAD_CONTROL" "topic create x zero"
	assert_failure
	run control "$KAFKAD_CONTROL" "ping"
	assert_output "ok"
	run control "$KAFKAD_CONTROL" "bootstrap"
	assert_output "ok $DPONE_TEST_KAFKA_BOOTSTRAP"
}
