/*
 * physical.c: dpone schema physical-plan: the topic a Kafka sink should
 * have, worked out from the source (row count, key, widest row in a
 * sample) and the manifest (strategy, delivery, limits). Printed as
 * Markdown or JSON; applied only with --apply (dpone-produce creates a
 * missing topic with it; an existing one is never changed).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan.h"

/* A partition is sized for this many bytes per second of writes. */
#define PARTITION_BYTES_PER_SECOND (5.0 * 1024 * 1024)
#define MAX_PARTITIONS 256

/* Run a stage and parse the YAML it prints (owned): --infer's contract. */
static json_t *
ask_yaml(char *const argv[])
{
	int code;
	char *out = dp_run_capture(argv, &code);
	if (code)
		dp_die(code < 0 ? DP_EXIT_FAILURE : code, "cannot plan: %s failed (exit status %d)", argv[0], code);
	const char *tmp = getenv("TMPDIR");
	char *tmpl = dp_strfmt("%s/dpone-plan.123456", tmp && *tmp ? tmp : "/tmp");
	memset(tmpl + strlen(tmpl) - 6, 'X', 6); /* mkstemp wants six X at the end */
	int fd = mkstemp(tmpl);
	if (fd < 0 || write(fd, out, strlen(out)) != (ssize_t)strlen(out))
		dp_die(DP_EXIT_FAILURE, "%s: cannot write: a temporary file", tmpl);
	close(fd);
	char err[1024];
	json_t *doc = dp_yaml_load_file(tmpl, NULL, err, sizeof err);
	unlink(tmpl);
	free(tmpl);
	free(out);
	if (!doc)
		dp_die(DP_EXIT_FAILURE, "%s printed what cannot be read: %s", argv[0], err);
	return doc;
}

static long long
round_up(long long v, long long to)
{
	return (v + to - 1) / to * to;
}

json_t *
physical_plan(const struct dp_manifest *m, const char *manifest_path, double throughput)
{
	char *plan_argv[] = {"dpone-extract", "-q", "--plan", (char *)manifest_path, NULL};
	char *infer_argv[] = {"dpone-extract", "-q", "--infer", "--sample", "1000", (char *)manifest_path, NULL};
	json_t *src = ask_stage(plan_argv), *contract = ask_yaml(infer_argv);
	json_t *sample = json_object_get(json_object_get(contract, "contract"), "sample");
	long long rows = json_integer_value(json_object_get(src, "rows"));
	long long widest = json_integer_value(json_object_get(sample, "widest_row_json_bytes"));
	long long limit = dp_manifest_int(m, "sink.options.delivery.max_message_bytes", 1000000);
	int keyed = json_array_size(json_object_get(src, "key")) > 0;
	/* Expected writes: --throughput messages/s, else the whole table in 5 minutes. */
	double per_second = throughput > 0 ? throughput : fmax(1.0, (double)rows / 300.0);
	double bytes_per_second = per_second * (double)(widest > 0 ? widest : 100);
	long long parts = (long long)ceil(bytes_per_second / PARTITION_BYTES_PER_SECOND);
	long long key_cardinality = keyed ? rows : -1;
	if (parts < 3)
		parts = 3; /* room for three consumers in a group */
	if (key_cardinality >= 0 && parts > key_cardinality)
		parts = key_cardinality > 0 ? key_cardinality : 1; /* more partitions than keys stay empty */
	if (parts > MAX_PARTITIONS)
		parts = MAX_PARTITIONS;
	json_t *fixed = dp_manifest_get(m, "sink.options.topic_config.partitions");
	if (json_is_integer(fixed))
		parts = json_integer_value(fixed);
	long long rf = dp_manifest_int(m, "sink.options.topic_config.replication_factor", 3);
	int compact = m->strategy == DP_INCREMENTAL_MERGE || m->strategy == DP_SNAPSHOT_RECONCILIATION ||
	              m->strategy == DP_CDC;
	const char *compression = dp_manifest_str(m, "sink.options.delivery.compression_type");
	long long max_message = round_up(widest * 12 / 10 + 1024, 1024);
	if (max_message < 1048588)
		max_message = 1048588; /* Kafka's default: never plan below it */
	json_t *configs = json_pack("{s:s, s:s, s:s, s:I, s:I}", "cleanup.policy", compact ? "compact" : "delete",
	                            "retention.ms", compact ? "-1" : "604800000", "compression.type",
	                            compression ? compression : "producer", "min.insync.replicas",
	                            (json_int_t)(rf > 1 ? rf - 1 : 1), "max.message.bytes", (json_int_t)max_message);
	if (compact)
		json_object_set_new(configs, "delete.retention.ms", json_string("86400000"));
	json_t *why = json_pack(
		"{s:s, s:s, s:s, s:s}", "partitions",
		json_is_integer(fixed)
			? "sink.options.topic_config.partitions"
			: "expected bytes per second / 5 MiB/s per partition, at least 3, at most one per key and 256",
		"cleanup.policy",
		compact ? "keyed upserts and deletes: compaction keeps the last event of each key"
			: "an event log: old events expire by time",
		"max.message.bytes",
		"the widest sampled row plus 20% and 1 KiB of key and headers, at least Kafka's default",
		"min.insync.replicas", "one fewer than the replication factor: acks=all survives one broker down");
	json_t *out = json_pack("{s:s, s:I, s:I, s:I, s:I, s:f, s:o, s:o, s:o}", "topic",
	                        dp_manifest_str(m, "sink.topic"), "partitions", (json_int_t)parts, "replication_factor",
	                        (json_int_t)rf, "source_rows", (json_int_t)rows, "widest_sampled_row_bytes",
	                        (json_int_t)widest, "expected_messages_per_second", per_second, "configs", configs,
	                        "why", why, "warnings", json_array());
	if (widest > limit)
		json_array_append_new(json_object_get(out, "warnings"),
		                      json_sprintf("rows of %lld bytes were sampled: "
		                                   "more than sink.options.delivery.max_message_bytes (%lld) allows; "
		                                   "such rows fail the run",
		                                   widest, limit));
	json_decref(src);
	json_decref(contract);
	return out;
}

void
physical_markdown(FILE *out, const json_t *p)
{
	fprintf(out, "# Physical plan: topic %s\n\n", json_string_value(json_object_get(p, "topic")));
	fprintf(out, "- partitions: %lld (%s)\n", (long long)json_integer_value(json_object_get(p, "partitions")),
	        json_string_value(json_object_get(json_object_get(p, "why"), "partitions")));
	fprintf(out, "- replication factor: %lld\n",
	        (long long)json_integer_value(json_object_get(p, "replication_factor")));
	fprintf(out, "- from: %lld source rows, widest sampled row %lld bytes, %.1f messages/s expected\n\n",
	        (long long)json_integer_value(json_object_get(p, "source_rows")),
	        (long long)json_integer_value(json_object_get(p, "widest_sampled_row_bytes")),
	        json_real_value(json_object_get(p, "expected_messages_per_second")));
	fputs("| config | value | why |\n|---|---|---|\n", out);
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(p, "configs"), k, v) {
		const char *why = json_string_value(json_object_get(json_object_get(p, "why"), k));
		char *text = json_is_string(v) ? dp_xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
		fprintf(out, "| %s | %s | %s |\n", k, text, why ? why : "");
		free(text);
	}
	size_t i;
	json_array_foreach(json_object_get(p, "warnings"), i, v)
		fprintf(out, "\nwarning: %s\n", json_string_value(v));
}
