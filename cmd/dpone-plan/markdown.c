/*
 * markdown.c: the plan as Markdown, for a pull request or a terminal. Every
 * value comes from the plan document; nothing is decided here.
 */
#include <stdlib.h>
#include <string.h>

#include "plan.h"

/* A value as compact JSON, strings without quotes; the caller frees it. */
static char *
text(const json_t *v)
{
	if (!v || json_is_null(v))
		return dp_xstrdup("none");
	if (json_is_string(v))
		return dp_xstrdup(json_string_value(v));
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
}

/* A table cell or inline value: | and newlines would break the table. */
static void
cell(FILE *out, const json_t *v)
{
	char *t = text(v);
	for (const char *p = t; *p; p++) {
		if (*p == '|')
			fputs("\\|", out);
		else if (*p == '\n')
			fputc(' ', out);
		else
			fputc(*p, out);
	}
	free(t);
}

static const json_t *
at(const json_t *o, const char *path)
{
	char key[128];
	while (o && *path) {
		size_t n = strcspn(path, ".");
		snprintf(key, sizeof key, "%.*s", (int)n, path);
		o = json_object_get(o, key);
		path += n + (path[n] == '.');
	}
	return o;
}

static void
item(FILE *out, const char *label, const json_t *v)
{
	fprintf(out, "- %s: ", label);
	cell(out, v);
	fputc('\n', out);
}

static void
connections(FILE *out, const json_t *plan)
{
	fputs("\n## Connections\n\n| role | id | type | from | host | user | password |\n"
	      "|---|---|---|---|---|---|---|\n",
	      out);
	const char *role;
	json_t *c;
	json_object_foreach((json_t *)at(plan, "connections"), role, c) {
		const json_t *host =
			json_object_get(c, "brokers") ? json_object_get(c, "brokers") : json_object_get(c, "host");
		fprintf(out, "| %s | ", role);
		const json_t *cells[] = {json_object_get(c, "id"),     json_object_get(c, "type"),
		                         json_object_get(c, "origin"), host,
		                         json_object_get(c, "user"),   json_object_get(c, "password")};
		for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++) {
			cell(out, cells[i]);
			fputs(" |", out);
			if (i + 1 < sizeof cells / sizeof cells[0])
				fputc(' ', out);
		}
		fputc('\n', out);
	}
}

static void
source(FILE *out, const json_t *plan)
{
	fputs("\n## Source\n\n", out);
	fprintf(out, "- table: %s.%s\n", json_string_value(at(plan, "source.schema")),
	        json_string_value(at(plan, "source.table")));
	item(out, "export mode", at(plan, "source.export_mode"));
	item(out, "batch size", at(plan, "source.batch_size"));
	item(out, "key", at(plan, "source.key"));
	fputs("\n| column | SQL type | logical type | nullable |\n|---|---|---|---|\n", out);
	size_t i;
	json_t *c;
	json_array_foreach(at(plan, "source.columns"), i, c) {
		fputs("| ", out);
		cell(out, json_object_get(c, "name"));
		fputs(" | ", out);
		cell(out, json_object_get(c, "sql_type"));
		fputs(" | ", out);
		cell(out, json_object_get(c, "logical_type"));
		fprintf(out, " | %s |\n", json_is_true(json_object_get(c, "nullable")) ? "yes" : "no");
	}
}

/* boundary_safety: the bound chosen, each candidate, and why. */
static void
late_commit_safety(FILE *out, const json_t *safety)
{
	if (!safety)
		return;
	static const char *const candidates[][2] = {{"max", "MAX now"},
	                                            {"min_active_rowversion", "MIN_ACTIVE_ROWVERSION()"},
	                                            {"oldest_open_transaction", "oldest open transaction began"},
	                                            {"below", "committed below"},
	                                            {"fallback", "fallback"}};
	fputs("- late-commit safety (", out);
	cell(out, json_object_get(safety, "policy"));
	fputs("): reads up to ", out);
	cell(out, json_object_get(safety, "high"));
	for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
		const json_t *v = json_object_get(safety, candidates[i][0]);
		if (!v || json_is_null(v))
			continue;
		fprintf(out, "; %s ", candidates[i][1]);
		cell(out, v);
	}
	fputs(": ", out);
	cell(out, json_object_get(safety, "reason"));
	fputs("\n", out);
}

static void
boundary(FILE *out, const json_t *plan)
{
	const json_t *b = at(plan, "boundary");
	fputs("\n## Boundary\n\n", out);
	item(out, "kind", json_object_get(b, "kind"));
	static const char *const keys[][2] = {{"column", "column"},
	                                      {"from", "committed watermark (from)"},
	                                      {"lookback", "lookback"},
	                                      {"low", "reads after (low, exclusive)"},
	                                      {"high", "reads up to (high, inclusive)"},
	                                      {"predicate", "source_custom_predicate"},
	                                      {"chunk", "chunk"},
	                                      {"capture_instance", "capture instance (cdc)"},
	                                      {"min_lsn", "oldest LSN still retained"},
	                                      {"snapshot", "snapshot of the table first"},
	                                      {"snapshot_reason", "why a snapshot"}};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (json_object_get(b, keys[i][0]))
			item(out, keys[i][1], json_object_get(b, keys[i][0]));
	item(out, "rows in the boundary now", json_object_get(b, "rows"));
	late_commit_safety(out, json_object_get(b, "safety"));
	const json_t *split = json_object_get(b, "split");
	if (json_object_get(b, "ranges")) {
		fprintf(out,
		        "\nRead in %lld ranges at once, each on its own connection: column %s split into equal "
		        "widths of its MIN..MAX inside the boundary (",
		        (long long)json_integer_value(json_object_get(split, "ranges")),
		        json_string_value(json_object_get(split, "column")));
		cell(out, json_object_get(split, "min"));
		fputs("..", out);
		cell(out, json_object_get(split, "max"));
		fputs("):\n\n| range | rows now | SQL |\n|---|---|---|\n", out);
		size_t i;
		const json_t *r;
		json_array_foreach(json_object_get(b, "ranges"), i, r) {
			fprintf(out, "| %lld | ", (long long)json_integer_value(json_object_get(r, "range")));
			cell(out, json_object_get(r, "rows"));
			fputs(" | `", out);
			cell(out, json_object_get(r, "sql"));
			fputs("` |\n", out);
		}
		return;
	}
	fprintf(out, "\nThe rows are read with:\n\n```sql\n%s\n```\n", json_string_value(json_object_get(b, "sql")));
}

static void
schema(FILE *out, const json_t *plan)
{
	fputs("\n## Schema evolution\n\n", out);
	fprintf(out, "- %s\n", json_string_value(at(plan, "schema.verdict")));
	if (at(plan, "schema.published_by"))
		item(out, "compared with the schema published by run", at(plan, "schema.published_by"));
	const json_t *changes = at(plan, "schema.changes");
	if (!json_array_size(changes))
		return;
	fputs("\n| column | change | from | to | breaking | action |\n|---|---|---|---|---|---|\n", out);
	size_t i;
	json_t *c;
	json_array_foreach(changes, i, c) {
		static const char *const keys[] = {"column", "change", "from", "to"};
		fputs("|", out);
		for (size_t k = 0; k < 4; k++) {
			fputc(' ', out);
			cell(out, json_object_get(c, keys[k]));
			fputs(" |", out);
		}
		fprintf(out, " %s | ", json_is_true(json_object_get(c, "breaking")) ? "yes" : "no");
		cell(out, json_object_get(c, "action"));
		fputs(" |\n", out);
	}
}

static void
strategy(FILE *out, const json_t *plan)
{
	fputs("\n## Strategy and sink\n\n", out);
	item(out, "strategy", at(plan, "strategy.mode"));
	if (at(plan, "strategy.unique_key"))
		item(out, "unique key", at(plan, "strategy.unique_key"));
	if (at(plan, "strategy.mode") && !strcmp(json_string_value(at(plan, "strategy.mode")), "incremental_merge"))
		item(out, "duplicate policy", at(plan, "strategy.duplicate_policy"));
	item(out, "topic", at(plan, "sink.topic"));
	item(out, "message", at(plan, "sink.format"));
	item(out, "envelope", at(plan, "sink.envelope"));
	item(out, "key", at(plan, "sink.key"));
	item(out, "deletes", at(plan, "sink.deletes"));
	item(out, "delivery", at(plan, "sink.delivery"));
	if (at(plan, "sink.compression_type"))
		item(out, "compression", at(plan, "sink.compression_type"));
	item(out, "staging", at(plan, "sink.staging"));
	item(out, "finalization", at(plan, "sink.finalization"));
}

/* snapshot_reconciliation: the keys a run would find missing, decided now. */
static void
reconciliation(FILE *out, const json_t *plan)
{
	const json_t *r = at(plan, "reconciliation");
	if (!r)
		return;
	const char *mode = json_string_value(json_object_get(r, "mode"));
	long long missing = (long long)json_integer_value(json_object_get(r, "missing"));
	fputs("\n## Reconciliation (deletes)\n\n", out);
	item(out, "delete mode", json_object_get(r, "mode"));
	item(out, "keys published and not deleted (the committed key index)", json_object_get(r, "previous_keys"));
	item(out, "keys in the source now", json_object_get(r, "current_keys"));
	item(out, "keys no longer in the source", json_object_get(r, "missing"));
	item(out, "share of the published keys", json_object_get(r, "delete_pct"));
	if (json_object_get(r, "max_delete_pct"))
		item(out, "max_delete_pct", json_object_get(r, "max_delete_pct"));
	item(out, "guard", json_object_get(r, "guard"));
	if (!strcmp(mode, "report_only"))
		fputs("- report_only: a run lists these keys in its artifacts and publishes no delete\n", out);
	else if (!strcmp(json_string_value(json_object_get(r, "guard")), "fail"))
		fputs("- a run would fail before its first delete: more keys would go than max_delete_pct allows\n",
		      out);
	else
		fprintf(out, "- a run publishes %s for each of these keys after the snapshot's rows\n",
		        !strcmp(mode, "tombstone") ? "a tombstone" : "a soft delete (the flag column set true)");
	fputs("- on Kafka this strategy is not recommended: the topic has no native finalization; with "
	      "exactly_once the rows and deletes commit in one transaction\n",
	      out);
	const json_t *sample = json_object_get(r, "missing_sample");
	if (json_array_size(sample)) {
		fprintf(out, "\nThe first %zu of %lld keys (all of them: `dpone-extract %s --missing-keys`):\n\n",
		        json_array_size(sample), missing, json_string_value(at(plan, "manifest")));
		size_t i;
		json_t *k;
		json_array_foreach(sample, i, k) {
			fputs("- `", out);
			cell(out, k);
			fputs("`\n", out);
		}
	}
}

static void
state(FILE *out, const json_t *plan)
{
	fputs("\n## State\n\n", out);
	item(out, "backend", at(plan, "state.type"));
	item(out, at(plan, "state.path") ? "file" : "table",
	     at(plan, "state.path") ? at(plan, "state.path") : at(plan, "state.table"));
	item(out, "last committed run", at(plan, "state.last_run"));
	item(out, "committed at", at(plan, "state.last_commit"));
	item(out, "watermark now", at(plan, "state.watermark_before"));
	fprintf(out, "- watermark after a successful run: ");
	cell(out, at(plan, "state.watermark_after"));
	fprintf(out, " (%s)\n", json_string_value(at(plan, "state.watermark_after_reason")));
	if (at(plan, "state.lease") && !json_is_null(at(plan, "state.lease")))
		item(out, "lease held", at(plan, "state.lease"));
	const json_t *chunked = at(plan, "state.chunked_run");
	if (chunked) {
		fputs("- a chunked run is open (dpone batch run --chunk): plan ", out);
		cell(out, json_object_get(chunked, "plan"));
		fprintf(out, ", %zu of %lld chunks delivered (", json_array_size(json_object_get(chunked, "delivered")),
		        (long long)json_integer_value(json_object_get(chunked, "ranges")));
		cell(out, json_object_get(chunked, "delivered"));
		fputs("); a whole run is refused until the rest are delivered or a reset abandons it\n", out);
	}
	fputs("- state advances only when every stage exited 0, the stream ended and the checks passed\n", out);
}

static void
checks(FILE *out, const json_t *plan)
{
	fputs("\n## Quality checks\n\n", out);
	item(out, "mode", at(plan, "quality.mode"));
	fprintf(out, "- %s\n", json_string_value(at(plan, "quality.effect")));
	const json_t *list = at(plan, "quality.checks");
	if (!json_array_size(list)) {
		fputs("- no checks are configured\n", out);
		return;
	}
	fputs("\n| check | settings | severity | decided |\n|---|---|---|---|\n", out);
	size_t i;
	json_t *c;
	json_array_foreach(list, i, c) {
		json_t *settings = json_deep_copy(c);
		json_object_del(settings, "type");
		json_object_del(settings, "severity");
		json_object_del(settings, "decided");
		fputs("| ", out);
		cell(out, json_object_get(c, "type"));
		fputs(" | ", out);
		cell(out, settings);
		fputs(" | ", out);
		cell(out, json_object_get(c, "severity"));
		fputs(" | ", out);
		cell(out, json_object_get(c, "decided"));
		fputs(" |\n", out);
		json_decref(settings);
	}
}

void
plan_markdown(FILE *out, const json_t *plan)
{
	fprintf(out, "# Plan: %s\n\n", json_string_value(at(plan, "job")));
	fprintf(out,
	        "Manifest `%s`. Planning changed nothing: it read the catalog, the boundary's row count and "
	        "the state.\n",
	        json_string_value(at(plan, "manifest")));
	connections(out, plan);
	source(out, plan);
	boundary(out, plan);
	schema(out, plan);
	strategy(out, plan);
	reconciliation(out, plan);
	state(out, plan);
	checks(out, plan);
	fputs("\n## Artifacts\n\n", out);
	item(out, "enabled", at(plan, "artifacts.enabled"));
	item(out, "run directory", at(plan, "artifacts.run_directory"));
	item(out, "runs kept", at(plan, "artifacts.keep"));
}
