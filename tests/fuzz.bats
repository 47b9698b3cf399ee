#!/usr/bin/env bats
# The fuzz harnesses (tests/fuzz/, make fuzz) replayed without libFuzzer:
# every seed of each corpus and every reproducer of a fixed crash under
# tests/fuzz/regress/ runs through the same properties the fuzzer checks
# (under ASan/UBSan in make check-asan). A broken property aborts.

load test_helper

FUZZ_DIR="$BATS_TEST_DIRNAME/fuzz"

# replay NAME: every file of the corpus and the reproducers, counted.
replay() {
	local want dirs=("$FUZZ_DIR/corpus/$1")
	[ ! -d "$FUZZ_DIR/regress/$1" ] || dirs+=("$FUZZ_DIR/regress/$1")
	want=$(find "${dirs[@]}" -type f | wc -l)
	[ "$want" -gt 0 ] || flunk "no inputs for fuzz-$1"
	run "fuzz-$1" "${dirs[@]}"
	assert_success
	assert_output_contains "$want inputs replayed"
}

@test "fuzz-stream: the seeds and reproducers keep the reader's properties" {
	replay stream
}

@test "fuzz-manifest: the seeds and reproducers load or are refused with a message" {
	replay manifest
}

@test "fuzz-encode: every value encodes to JSON jansson parses, or is refused" {
	replay encode
}

@test "fuzz-state: state files load or are refused; watermarks order consistently" {
	replay state
}

@test "fuzz-encode: NaN, infinity and out-of-range dates are refused, not written" {
	# type 6 = float (8 bytes), type 5 = real; 11 = smalldatetime; 14 = datetime2
	printf '\006\000\000\000\000\000\000\000\370\177' > nan
	printf '\005\000\000\000\200\177' > inf
	printf '\013\000\377\377\240\005' > minute-1440
	printf '\016\007\000\000\000\000\000\000\000\000\377\377\377\177\000\000\000\140' > year-5m
	run fuzz-encode nan inf minute-1440 year-5m
	assert_success
	assert_output_contains "4 inputs replayed"
}

@test "fuzz-encode: invalid UTF-8 from the server becomes U+FFFD (the harness checks it)" {
	# type 18 = nvarchar: a lone continuation byte, a cut 3-byte sequence, an overlong NUL, a surrogate
	printf '\022\000a\200b' > lone
	printf '\022\000\342\202' > 'cut'
	printf '\022\000\300\200' > overlong
	printf '\022\000\355\240\200' > surrogate
	run fuzz-encode lone cut overlong surrogate
	assert_success
	assert_output_contains "4 inputs replayed"
}
