/*
 * safety.c: source.options.boundary_safety. A run fixes its high
 * watermark once, as MAX(column); a transaction that wrote a row below it
 * but commits after that moment would be skipped for good, because the
 * next run starts above it. This file finds the bound below which every
 * row of the column is committed:
 *   - rowversion/timestamp columns: MIN_ACTIVE_ROWVERSION() (every row
 *     version below it is committed), exactly;
 *   - date/time columns stamped by the server's clock: the begin time of
 *     the oldest open transaction in the database
 *     (sys.dm_tran_database_transactions; VIEW SERVER STATE or VIEW
 *     DATABASE STATE), turned to the column's clock
 *     (source.options.timestamp_clock) and less source.options.clock_margin.
 * Without the permission the run goes on with a warning and relies on
 * source.options.lookback; main.c reads up to MAX(column) below the bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extract.h"

static int
is_rowversion(const struct column *c)
{
	return !strcasecmp(c->data_type, "timestamp") || !strcasecmp(c->data_type, "rowversion");
}

/* epoch seconds of a JSON timestamp ("2026-12-08T02:41:00.1234567"), or -1 */
static long long
json_seconds(const char *json)
{
	long long secs;
	return json && json[0] == '"' && dp_timestamp_utc(json + 1, &secs) == 0 ? secs : -1;
}

static void
rowversion_bound(struct source *s, const struct column *c, const struct encoding *enc, struct late_commit *lc)
{
	char *marv = source_try_scalar_json(s, "SELECT MIN_ACTIVE_ROWVERSION()", c, enc);
	if (!marv) {
		json_object_set_new(lc->about, "applied", json_false());
		json_object_set_new(lc->about, "reason",
		                    json_sprintf("MIN_ACTIVE_ROWVERSION() failed: %s", source_error()));
		return;
	}
	json_object_set_new(lc->about, "min_active_rowversion", json_loads(marv, JSON_DECODE_ANY, NULL));
	json_object_set_new(lc->about, "reason",
	                    json_string("every row version below MIN_ACTIVE_ROWVERSION() is committed"));
	lc->below = marv;
}

/* The server's local clock less UTC, in seconds (whole minutes). */
static long long
server_utc_offset(struct source *s, const struct encoding *enc)
{
	struct column t = {
		.name = "now", .data_type = "datetime2", .sql_type = "datetime2(7)", .logical = "timestamp", .scale = 7};
	char *local = source_try_scalar_json(s, "SELECT SYSDATETIME()", &t, enc),
	     *utc = source_try_scalar_json(s, "SELECT SYSUTCDATETIME()", &t, enc);
	long long a = json_seconds(local), b = json_seconds(utc);
	free(local);
	free(utc);
	long long d = a < 0 || b < 0 ? 0 : a - b;
	return (d >= 0 ? d + 30 : d - 30) / 60 * 60;
}

static void
clock_bound(struct source *s, const struct dp_manifest *m, const struct encoding *enc, struct late_commit *lc)
{
	struct column t = {.name = "database_transaction_begin_time",
	                   .data_type = "datetime",
	                   .sql_type = "datetime",
	                   .logical = "timestamp",
	                   .scale = 3};
	char *begin = source_try_scalar_json(
		s,
		"SELECT MIN(database_transaction_begin_time) FROM sys.dm_tran_database_transactions "
		"WHERE database_id = DB_ID()",
		&t, enc);
	if (!begin) {
		const char *lookback = dp_manifest_str(m, "source.options.lookback");
		json_object_set_new(lc->about, "applied", json_false());
		json_object_set_new(lc->about, "fallback", json_string(lookback ? "lookback" : "none"));
		json_object_set_new(lc->about, "reason",
		                    json_sprintf("cannot see the open transactions: %s", source_error()));
		dp_warn("warning: source.options.boundary_safety: cannot see the database's open transactions (%s; "
		        "grant "
		        "VIEW SERVER STATE or VIEW DATABASE STATE): a transaction that commits late below this run's "
		        "high "
		        "watermark is %s",
		        source_error(),
		        lookback ? "read only if it is within source.options.lookback"
		                 : "skipped for good (no source.options.lookback)");
		return;
	}
	json_object_set_new(lc->about, "oldest_open_transaction", json_loads(begin, JSON_DECODE_ANY, NULL));
	long long began = json_seconds(begin);
	free(begin);
	if (began < 0) {
		json_object_set_new(lc->about, "reason", json_string("no transaction is open in the database"));
		return;
	}
	const char *clock = dp_manifest_str(m, "source.options.timestamp_clock");
	long long offset = clock && !strcmp(clock, "local") ? 0 : server_utc_offset(s, enc);
	const char *margin = dp_manifest_str(m, "source.options.clock_margin");
	time_t below = (time_t)(began - offset - dp_duration_seconds(margin));
	struct tm tm;
	gmtime_r(&below, &tm);
	lc->below = dp_strfmt("\"%04d-%02d-%02dT%02d:%02d:%02d\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	                      tm.tm_hour, tm.tm_min, tm.tm_sec);
	json_object_set_new(lc->about, "below", json_loads(lc->below, JSON_DECODE_ANY, NULL));
	json_object_set_new(lc->about, "reason",
	                    json_sprintf("a transaction open since %s (server time; the column's clock: %s, less "
	                                 "clock_margin %s) may still commit rows stamped after it began",
	                                 json_string_value(json_object_get(lc->about, "oldest_open_transaction")),
	                                 clock ? clock : "utc", margin));
}

json_t *
late_commit_probe(struct source *s, const struct dp_manifest *m, const struct encoding *enc)
{
	const char *policy = dp_manifest_str(m, "source.options.boundary_safety");
	if (s->inc < 0 || !dp_manifest_incremental(m) || !policy || strcmp(policy, "active_transactions") ||
	    strcmp(s->cols[s->inc].logical, "timestamp") || is_rowversion(&s->cols[s->inc]))
		return NULL;
	struct column t = {.name = "n", .data_type = "int", .sql_type = "int", .logical = "integer"};
	char *n = source_try_scalar_json(
		s, "SELECT COUNT(*) FROM sys.dm_tran_database_transactions WHERE database_id = DB_ID()", &t, enc);
	json_t *out =
		n ? json_pack("{s:b, s:s}", "visible", 1, "column", s->cols[s->inc].name)
		  : json_pack("{s:b, s:s, s:s}", "visible", 0, "column", s->cols[s->inc].name, "error", source_error());
	free(n);
	return out;
}

void
late_commit_bound(struct source *s, const struct dp_manifest *m, const struct column *c, const struct encoding *enc,
                  struct late_commit *lc)
{
	const char *policy = dp_manifest_str(m, "source.options.boundary_safety");
	*lc = (struct late_commit){.about = json_pack("{s:s}", "policy", policy)};
	if (strcmp(policy, "active_transactions")) {
		json_object_set_new(
			lc->about, "reason",
			json_string(!strcmp(policy, "lookback")
		                            ? "late commits are read again within source.options.lookback"
		                            : "no protection against late commits (boundary_safety: none)"));
		return;
	}
	if (is_rowversion(c))
		rowversion_bound(s, c, enc, lc);
	else if (!strcmp(c->logical, "timestamp"))
		clock_bound(s, m, enc, lc);
	else {
		json_object_set_new(lc->about, "applied", json_false());
		json_object_set_new(
			lc->about, "reason",
			json_sprintf("column %s (%s) is neither a rowversion nor stamped by a clock: open "
		                     "transactions cannot be placed on it; late commits are read only within "
		                     "source.options.lookback",
		                     c->name, c->sql_type));
	}
}
