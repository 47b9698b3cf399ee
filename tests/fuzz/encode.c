/*
 * encode.c: dpone-extract's value encoder (TDS value → JSON), fed what
 * db-lib could hand it: the first byte picks the column type, the second
 * the column's scale and the encoding options, the rest is the value's
 * bytes (fixed-size types get exactly their size; a hostile server still
 * chooses every bit of them). Properties: the output is one JSON value
 * that jansson parses, or the encoder refuses (-1); strings round-trip
 * exactly when the input is valid UTF-8 without NUL.
 */
#include <string.h>

#include "../../cmd/dpone-extract/extract.h"
#include "fuzz.h"

static const struct {
	int dbtype;
	DBINT size; /* 0: variable, the rest of the input */
	const char *data_type;
} types[] = {
	{SYBBITN, 1, "bit"},
	{SYBINT1, 1, "tinyint"},
	{SYBINT2, 2, "smallint"},
	{SYBINT4, 4, "int"},
	{SYBINT8, 8, "bigint"},
	{SYBREAL, 4, "real"},
	{SYBFLT8, 8, "float"},
	{SYBDECIMAL, sizeof(DBNUMERIC), "decimal"},
	{SYBMONEY, 8, "money"},
	{SYBMONEY4, 4, "smallmoney"},
	{SYBDATETIME, 8, "datetime"},
	{SYBDATETIME4, 4, "smalldatetime"},
	{SYBMSDATE, sizeof(DBDATETIMEALL), "date"},
	{SYBMSTIME, sizeof(DBDATETIMEALL), "time"},
	{SYBMSDATETIME2, sizeof(DBDATETIMEALL), "datetime2"},
	{SYBMSDATETIMEOFFSET, sizeof(DBDATETIMEALL), "datetimeoffset"},
	{DP_SYBUNIQUE, 16, "uniqueidentifier"},
	{SYBVARBINARY, 0, "varbinary"},
	{SYBVARCHAR, 0, "nvarchar"},
};
#define NTYPES (sizeof types / sizeof types[0])

static void
check_string_round_trip(const json_t *v, const uint8_t *in, size_t n)
{
	if (memchr(in, 0, n))
		return; /* db-lib's strings end at NUL for some types; not compared */
	for (size_t i = 0; i < n;) {
		size_t l = dp_utf8_len(in + i, in + n);
		if (!l) { /* invalid UTF-8: written as U+FFFD (dpone-types(7)), never passed on */
			if (!memmem(json_string_value(v), json_string_length(v), "\xEF\xBF\xBD", 3))
				fuzz_fail("invalid UTF-8 was not replaced by U+FFFD");
			return;
		}
		i += l;
	}
	if (json_string_length(v) != n || memcmp(json_string_value(v), in, n))
		fuzz_fail("a valid UTF-8 string did not round-trip");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned t = data[0] % NTYPES;
	struct column col = {.precision = 38, .scale = data[1] % 9 == 8 ? -1 : data[1] % 9, .max_length = -1};
	struct encoding enc = {.bigint_as_string = data[1] >> 7, .binary_as_hex = (data[1] >> 6) & 1};
	strcpy(col.data_type, types[t].data_type);
	strcpy(col.sql_type, types[t].data_type);
	strcpy(col.name, "v");
	col.logical = logical_type(col.data_type);
	data += 2;
	size -= 2;
	DBINT len = types[t].size ? types[t].size : (DBINT)size;
	BYTE value[sizeof(DBDATETIMEALL) > sizeof(DBNUMERIC) ? sizeof(DBDATETIMEALL) : sizeof(DBNUMERIC)] = {0};
	const BYTE *p = data;
	if (types[t].size) {
		memcpy(value, data, size < (size_t)len ? size : (size_t)len);
		p = value;
	}
	struct dp_buf b = {0};
	if (encode_value(&b, &col, types[t].dbtype, p, len, &enc) == 0) {
		json_error_t jerr;
		json_t *v = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (!v)
			fuzz_fail("%s value encoded as %.*s, which jansson rejects: %s", col.data_type, (int)b.len, b.p,
			          jerr.text);
		if (types[t].dbtype == SYBVARCHAR)
			check_string_round_trip(v, data, size);
		json_decref(v);
	}
	free(b.p);
	return 0;
}
