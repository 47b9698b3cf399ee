#!/usr/bin/env bats
# tests/chaos/run in a short form for every make check: batch runs of an
# incremental job while rows keep arriving, a random fault in each (SIGKILL
# of a stage, the state database stopped, brokers down, produce errors,
# SQL Server faults), reruns, and the topic checked against the source and
# the state after every run. make chaos runs the long form (the README's
# figures).

load test_helper

@test "chaos: at_least_once survives random faults with no row lost and state never ahead of the topic" {
	run "$BATS_TEST_DIRNAME/chaos/run" -n 15 -d at_least_once -s "$BATS_TEST_NUMBER$$"
	assert_success
	assert_output_contains "chaos: 15 faults survived"
	assert_output_contains " 0 lost,"
}

@test "chaos: exactly_once survives random faults with no row lost and state never ahead of the topic" {
	run "$BATS_TEST_DIRNAME/chaos/run" -n 8 -d exactly_once -s "$BATS_TEST_NUMBER$$"
	assert_success
	assert_output_contains "chaos: 8 faults survived"
	assert_output_contains " 0 lost,"
}

@test "chaos: with boundary_safety none, the late writer's rows are lost, and the chaos check says so" {
	run "$BATS_TEST_DIRNAME/chaos/run" -n 5 -d at_least_once -b none -s "$BATS_TEST_NUMBER$$"
	assert_failure
	assert_output_contains "are not in the topic"
}
