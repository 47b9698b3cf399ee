/*
 * stream-relay: read a dpone stream on stdin with libcommon's reader and
 * write every line back out with its writer. It is how the tests drive the
 * stream library, and what bench/stream measures.
 *   -n        frame only; do not validate row JSON
 *   -z LEVEL  compress the output with zstd
 *   -s        print "rows=N deletes=N lines=N" on stderr at the end
 */
#include <stdlib.h>
#include <unistd.h>

#include "dpone.h"

int
main(int argc, char **argv)
{
	int flags = DP_READ_VALIDATE_ROWS, level = 0, summary = 0, ch;
	dp_setprogname(argv[0]);
	while ((ch = getopt(argc, argv, "nz:s")) != -1) {
		switch (ch) {
		case 'n': flags = 0; break;
		case 'z': level = atoi(optarg); break;
		case 's': summary = 1; break;
		default: dp_die(DP_EXIT_USAGE, "usage: stream-relay [-ns] [-z LEVEL] < STREAM");
		}
	}
	struct dp_reader *r = dp_reader_open(0, "stdin", flags);
	struct dp_writer *w = dp_writer_open(1, "stdout", level);
	int got;
	while ((got = dp_reader_next(r)) == 1) {
		size_t len;
		const char *line = dp_reader_line(r, &len);
		if (dp_writer_line(w, line, len))
			break;
	}
	int code = DP_EXIT_OK;
	if (got < 0) {
		dp_warn("%s", dp_reader_error(r));
		code = dp_reader_error_code(r);
	}
	if (dp_writer_close(w) && code == DP_EXIT_OK)
		code = DP_EXIT_FAILURE;
	if (summary)
		fprintf(stderr, "rows=%llu deletes=%llu lines=%llu\n", dp_reader_rows(r), dp_reader_deletes(r),
		        dp_reader_lineno(r));
	dp_reader_close(r);
	return code;
}
