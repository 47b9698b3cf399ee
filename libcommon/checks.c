/*
 * checks.c: what dpone-check and dpone-produce share about quality checks:
 * whether a run needs the check stage at all, the checks decided from the
 * row count alone (min_rows, max_rows), a check's result object, and the
 * checks message with its pass/idle verdict. When no configured check
 * needs to see rows, the wrapper runs extract | produce, and dpone-produce
 * decides the count checks from the rows it read with these same functions,
 * so the verdicts are the same either way.
 */
#include <string.h>

#include "dpone.h"

int
dp_manifest_check_stage(const struct dp_manifest *m)
{
	/* A type contract reads every row; variant columns rewrite rows. */
	if (dp_manifest_str(m, "contract"))
		return 1;
	if (json_is_true(dp_manifest_get(m, "schema_evolution.enabled")) && m->on_breaking == DP_BREAKING_VARIANT)
		return 1;
	if (m->quality == DP_QUALITY_OFF)
		return 0;
	size_t i;
	json_t *spec;
	json_array_foreach(dp_manifest_get(m, "quality.checks"), i, spec) {
		int kind = dp_check_type(json_string_value(json_object_get(spec, "type")));
		/* source_target_count: dpone-extract counts the source after the
		 * rows (end's source_rows), except for cdc, whose count dpone-check
		 * makes from the change boundary. */
		if (kind == DP_CHECK_SOURCE_COUNT && m->strategy != DP_CDC)
			continue;
		if (kind != DP_CHECK_MIN_ROWS && kind != DP_CHECK_MAX_ROWS)
			return 1; /* reads rows: not_null, unique, freshness, hash_reconciliation */
	}
	return 0;
}

double
dp_check_allowed(const json_t *spec, unsigned long long rows)
{
	json_t *tol = json_object_get(spec, "tolerance");
	if (tol) {
		double v = json_number_value(json_object_get(tol, "value"));
		const char *mode = json_string_value(json_object_get(tol, "mode"));
		return mode && !strcmp(mode, "pct") ? rows * v / 100 : v;
	}
	json_t *pct = json_object_get(spec, "tolerance_pct");
	return pct ? rows * json_number_value(pct) / 100 : 0;
}

int
dp_source_count_check(const json_t *spec, long long source, unsigned long long rows, char **why)
{
	unsigned long long diff =
		(unsigned long long)(source > (long long)rows ? source - (long long)rows : (long long)rows - source);
	double limit = dp_check_allowed(spec, (unsigned long long)source);
	*why = dp_strfmt("the source has %lld rows in the boundary, the stream %llu (difference %llu, %g allowed); "
	                 "every one of them must then be delivered for the commit",
	                 source, rows, diff, limit);
	return diff <= limit;
}

int
dp_rows_check(int kind, const json_t *spec, unsigned long long rows, char **why)
{
	double threshold = json_number_value(json_object_get(spec, "threshold"));
	if (kind == DP_CHECK_MIN_ROWS) {
		*why = dp_strfmt("%llu row%s, at least %g wanted", rows, rows == 1 ? "" : "s", threshold);
		return rows >= threshold;
	}
	*why = dp_strfmt("%llu row%s, at most %g wanted", rows, rows == 1 ? "" : "s", threshold);
	return rows <= threshold;
}

json_t *
dp_check_result(const json_t *spec)
{
	const char *type = json_string_value(json_object_get(spec, "type"));
	const char *severity = json_string_value(json_object_get(spec, "severity"));
	json_t *r = json_pack("{s:s, s:s}", "type", type, "severity", severity ? severity : "error");
	if (json_object_get(spec, "name"))
		json_object_set(r, "name", json_object_get(spec, "name"));
	return r;
}

void
dp_check_verdict(const struct dp_manifest *m, json_t *r, int ok, char *why)
{
	const char *status = ok ? "pass" : "fail";
	if (!ok &&
	    (m->quality == DP_QUALITY_WARN || !strcmp(json_string_value(json_object_get(r, "severity")), "warning")))
		status = "warn";
	json_object_set_new(r, "status", json_string(status));
	json_object_set_new(r, "detail", json_string(why));
	free(why);
}

json_t *
dp_checks_message(const struct dp_manifest *m, json_t *results, json_t *contract, int contract_failed,
                  unsigned long long rows, int quiet, int *passed, int *idle)
{
	*passed = 1;
	*idle = rows == 0;
	size_t i;
	json_t *r;
	json_array_foreach(results, i, r) {
		const char *status = json_string_value(json_object_get(r, "status"));
		if (!strcmp(status, "fail")) {
			*passed = 0;
			if (dp_check_type(json_string_value(json_object_get(r, "type"))) != DP_CHECK_MIN_ROWS)
				*idle = 0;
		}
	}
	if (contract_failed)
		*passed = *idle = 0;
	*idle &= !*passed;
	/* An idle run's min_rows failure is said once, by the exit message. */
	json_array_foreach(results, i, r) {
		const char *status = json_string_value(json_object_get(r, "status"));
		if ((!strcmp(status, "fail") && !*idle) || (!quiet && !strcmp(status, "warn")))
			dp_warn("%s check %s: %s", json_string_value(json_object_get(r, "type")),
			        !strcmp(status, "fail") ? "failed" : "failed (warning only)",
			        json_string_value(json_object_get(r, "detail")));
	}
	if (contract) {
		if (contract_failed ||
		    (!quiet && !strcmp(json_string_value(json_object_get(contract, "status")), "warn")))
			dp_warn("contract %s: %s", contract_failed ? "failed" : "broken (enforcement: warn)",
			        json_string_value(json_object_get(contract, "detail")));
		json_array_append_new(results, contract);
	}
	json_t *v = json_pack("{s:s, s:b, s:I, s:o}", "mode", dp_manifest_str(m, "quality.mode"), "passed", *passed,
	                      "rows", (json_int_t)rows, "results", results);
	if (*idle)
		json_object_set_new(v, "idle", json_true());
	return v;
}

json_t *
dp_rows_checks_message(const struct dp_manifest *m, unsigned long long rows, long long source_rows, int quiet,
                       int *passed, int *idle)
{
	json_t *results = json_array();
	size_t i;
	json_t *spec;
	if (m->quality != DP_QUALITY_OFF)
		json_array_foreach(dp_manifest_get(m, "quality.checks"), i, spec) {
			int kind = dp_check_type(json_string_value(json_object_get(spec, "type")));
			char *why;
			json_t *r = dp_check_result(spec);
			int ok;
			if (kind != DP_CHECK_SOURCE_COUNT) {
				ok = dp_rows_check(kind, spec, rows, &why);
			} else if (source_rows < 0) {
				ok = 0;
				why = dp_strfmt("the source could not be counted: the stream's end has no source_rows");
			} else {
				ok = dp_source_count_check(spec, source_rows, rows, &why);
				json_object_set_new(r, "source_rows", json_integer(source_rows));
			}
			dp_check_verdict(m, r, ok, why);
			json_array_append_new(results, r);
		}
	return dp_checks_message(m, results, NULL, 0, rows, quiet, passed, idle);
}
