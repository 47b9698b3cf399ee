/*
 * fuzz.h: what the fuzz harnesses share. Each harness defines
 * LLVMFuzzerTestOneInput; it is linked either with libFuzzer (make fuzz,
 * clang) or with driver.c, which replays files (make check: the seed
 * corpora and every reproducer kept under tests/fuzz/regress/).
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A memory file holding data, positioned at 0; -1 if it cannot be made.
 * The caller closes it. */
int fuzz_memfd(const uint8_t *data, size_t size);
/* Stop the run with a message: a property the harness checks was broken. */
_Noreturn void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
