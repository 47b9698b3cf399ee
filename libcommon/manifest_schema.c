/*
 * manifest_schema.c: every manifest key, its type and default.
 * dpone-manifest(5) documents the same table; keep them in step. The
 * values of the choices commands branch on come from dpone.h's tables
 * (DP_STRATEGIES, ...), so the schema and the enums cannot drift apart.
 */
#include <stddef.h>

#include "dpone.h"
#include "manifest_schema.h"

/* One key each; clang-format would take the braces for blocks. */
/* clang-format off */
#define END {NULL, K_STR, 0, NULL, NULL, NULL, 0, 0}
#define STR(n, f, d) {n, K_STR, f, d, NULL, NULL, 0, 0}
#define INT(n, f, d, lo, hi) {n, K_INT, f, d, NULL, NULL, lo, hi}
#define NUM(n, f, d, lo, hi) {n, K_NUM, f, d, NULL, NULL, lo, hi}
#define BOOL(n, d) {n, K_BOOL, 0, d, NULL, NULL, 0, 0}
#define ENUM(n, f, d, v) {n, K_ENUM, f, d, NULL, v, 0, 0}
#define MAP(n, f, c) {n, K_MAP, f, NULL, c, NULL, 0, 0}
#define LIST(n, k) {n, k, 0, NULL, NULL, NULL, 0, 0}
#define MAPLIST(n, c) {n, K_MAPLIST, 0, NULL, c, NULL, 0, 0}
/* clang-format on */

static const char *const connection_types[] = {"env", "file", "vault", NULL};
const char *const dp_export_mode_names[] = {DP_EXPORT_MODES(DP_ENUM_NAME) NULL};
const char *const dp_bigint_mode_names[] = {DP_BIGINT_MODES(DP_ENUM_NAME) NULL};
const char *const dp_binary_mode_names[] = {DP_BINARY_MODES(DP_ENUM_NAME) NULL};
static const char *const row_filter_options[] = {"all", "all update old", NULL};
static const char *const snapshot_modes[] = {"initial", "never", "when_needed", NULL};
static const char *const boundary_safeties[] = {"active_transactions", "lookback", "none", NULL};
static const char *const timestamp_clocks[] = {"utc", "local", NULL};
const char *const dp_strategy_names[] = {DP_STRATEGIES(DP_ENUM_NAME) NULL};
static const char *const merge_policies[] = {"event_upsert", NULL};
static const char *const duplicate_policies[] = {"fail", "keep_last", "keep_first", NULL};
static const char *const delete_modes[] = {"report_only", "tombstone", "soft_delete", NULL};
static const char *const message_formats[] = {"json", NULL};
static const char *const envelopes[] = {"flat", "debezium", "dpone", NULL};
static const char *const key_modes[] = {"unique_key", "primary_key", "fields", "hash_row", "null", NULL};
static const char *const key_formats[] = {"object", "value", NULL};
const char *const dp_delivery_mode_names[] = {DP_DELIVERY_MODES(DP_ENUM_NAME) NULL};
static const char *const compression_types[] = {"none", "gzip", "snappy", "lz4", "zstd", NULL};
const char *const dp_state_type_names[] = {DP_STATE_TYPES(DP_ENUM_NAME) NULL};
const char *const dp_quality_mode_names[] = {DP_QUALITY_MODES(DP_ENUM_NAME) NULL};
const char *const dp_check_type_names[] = {DP_CHECK_TYPES(DP_ENUM_NAME) NULL};
const char *const dp_dpone_header_names[] = {DP_DPONE_HEADERS(DP_ENUM_NAME) NULL};
static const char *const severities[] = {"error", "warning", NULL};
static const char *const tolerance_modes[] = {"absolute", "pct", NULL};
const char *const dp_breaking_policy_names[] = {DP_BREAKING_POLICIES(DP_ENUM_NAME) NULL};

static const struct key table_keys[] = {STR("schema", 0, "dbo"), STR("name", REQUIRED, NULL), STR("database", 0, NULL),
                                        END};

static const struct key source_options[] = {STR("incremental_column", 0, NULL),
                                            INT("batch_size", 0, "50000", 1, 10000000),
                                            ENUM("export_mode", 0, "stream", dp_export_mode_names),
                                            LIST("columns", K_STRLIST),
                                            STR("source_custom_predicate", 0, NULL),
                                            STR("lookback", 0, NULL),
                                            ENUM("bigint_as", 0, "number", dp_bigint_mode_names),
                                            ENUM("binary_as", 0, "base64", dp_binary_mode_names),
                                            STR("capture_instance", 0, NULL),
                                            ENUM("snapshot", 0, "initial", snapshot_modes),
                                            ENUM("row_filter_option", 0, "all", row_filter_options),
                                            INT("retries", 0, "3", 0, 10),
                                            STR("retry_backoff", 0, "2s"),
                                            STR("login_timeout", 0, "30s"),
                                            STR("query_timeout", 0, "1h"),
                                            INT("parallelism", 0, "1", 1, 64),
                                            ENUM("boundary_safety", 0, "active_transactions", boundary_safeties),
                                            STR("clock_margin", 0, "1s"),
                                            ENUM("timestamp_clock", 0, "utc", timestamp_clocks),
                                            STR("split_column", 0, NULL),
                                            END};

static const struct key source_keys[] = {STR("type", REQUIRED, NULL),
                                         STR("connection_id", REQUIRED, NULL),
                                         ENUM("connection_type", 0, "env", connection_types),
                                         MAP("table", REQUIRED, table_keys),
                                         MAP("options", AUTO, source_options),
                                         END};

static const struct key window_keys[] = {STR("column", REQUIRED, NULL), STR("from", 0, NULL), STR("to", 0, NULL), END};

static const struct key strategy_keys[] = {ENUM("mode", REQUIRED, NULL, dp_strategy_names),
                                           LIST("unique_key", K_KEYLIST),
                                           ENUM("merge_policy", 0, "event_upsert", merge_policies),
                                           ENUM("duplicate_policy", 0, "fail", duplicate_policies),
                                           ENUM("delete_mode", 0, "report_only", delete_modes),
                                           STR("soft_delete_column", 0, "__deleted"),
                                           NUM("max_delete_pct", 0, NULL, 0, 100),
                                           INT("reconcile_memory_mb", 0, "64", 1, 65536),
                                           MAP("window", 0, window_keys),
                                           END};

static const struct key key_keys[] = {ENUM("mode", 0, NULL, key_modes), /* default depends on unique_key */
                                      LIST("fields", K_KEYLIST), STR("field", 0, NULL),
                                      ENUM("format", 0, "object", key_formats), END};

static const struct key delete_keys[] = {BOOL("enabled", "false"), BOOL("tombstone", "false"),
                                         STR("op_field", 0, "__dpone__op"), BOOL("rewrite", "false"), END};

static const struct key delivery_keys[] = {ENUM("mode", 0, "at_least_once", dp_delivery_mode_names),
                                           ENUM("compression_type", 0, NULL, compression_types),
                                           INT("linger_ms", 0, NULL, 0, 900000),
                                           INT("batch_num_messages", 0, NULL, 1, 1000000),
                                           INT("batch_size", 0, NULL, 1, 2147483647),
                                           INT("request_timeout_ms", 0, NULL, 1, 900000),
                                           INT("message_timeout_ms", 0, NULL, 0, 2147483647),
                                           NUM("flush_timeout", 0, NULL, 0, 0),
                                           INT("queue_buffering_max_messages", 0, NULL, 1, 2147483647),
                                           INT("queue_buffering_max_kbytes", 0, NULL, 1, 2147483647),
                                           INT("transaction_timeout_ms", 0, NULL, 1000, 2147483647),
                                           STR("transactional_id", 0, NULL),
                                           INT("max_message_bytes", 0, "1000000", 1, 1000000000),
                                           END};

static const struct key topic_config_keys[] = {BOOL("auto_create", "false"), INT("partitions", 0, NULL, 1, 100000),
                                               INT("replication_factor", 0, NULL, 1, 32767),
                                               LIST("configs", K_SCALARMAP), END};

static const struct key schema_registry_keys[] = {BOOL("enabled", "false"), STR("subject_name_strategy", 0, NULL),
                                                  BOOL("auto_register_schemas", "false"), STR("url", 0, NULL), END};

static const struct key sink_options[] = {STR("topic", 0, NULL),
                                          ENUM("message_format", 0, "json", message_formats),
                                          ENUM("envelope", 0, "flat", envelopes),
                                          BOOL("always_envelope", "false"),
                                          MAP("key", AUTO, key_keys),
                                          MAP("deletes", AUTO, delete_keys),
                                          MAP("delivery", AUTO, delivery_keys),
                                          LIST("headers", K_SCALARMAP),
                                          LIST("dpone_headers", K_STRLIST),
                                          LIST("properties", K_SCALARMAP),
                                          MAP("topic_config", AUTO, topic_config_keys),
                                          MAP("schema_registry", 0, schema_registry_keys),
                                          END};

static const struct key sink_keys[] = {STR("type", REQUIRED, NULL),
                                       STR("connection_id", REQUIRED, NULL),
                                       ENUM("connection_type", 0, "env", connection_types),
                                       STR("topic", 0, NULL),
                                       MAP("strategy", REQUIRED, strategy_keys),
                                       MAP("options", AUTO, sink_options),
                                       END};

static const struct key state_table_keys[] = {STR("schema", 0, "etl_state"), STR("name", 0, "dpone_state"), END};

static const struct key state_keys[] = {ENUM("type", 0, "file", dp_state_type_names),
                                        STR("connection_id", 0, NULL),
                                        ENUM("connection_type", 0, "env", connection_types),
                                        MAP("table", AUTO, state_table_keys),
                                        STR("path", 0, NULL), /* default depends on name */
                                        STR("lease_ttl", 0, "6h"),
                                        END};

static const struct key tolerance_keys[] = {ENUM("mode", REQUIRED, NULL, tolerance_modes),
                                            NUM("value", REQUIRED, NULL, 0, 0), END};

static const struct key check_keys[] = {ENUM("type", REQUIRED, NULL, dp_check_type_names),
                                        STR("name", 0, NULL),
                                        NUM("threshold", 0, NULL, 0, 0),
                                        NUM("tolerance_pct", 0, NULL, 0, 100),
                                        MAP("tolerance", 0, tolerance_keys),
                                        STR("column", 0, NULL),
                                        LIST("columns", K_KEYLIST),
                                        STR("max_age", 0, NULL),
                                        ENUM("severity", 0, "error", severities),
                                        END};

static const struct key quality_keys[] = {ENUM("mode", 0, "fail", dp_quality_mode_names), MAPLIST("checks", check_keys),
                                          END};

static const struct key evolution_keys[] = {BOOL("enabled", "true"),
                                            ENUM("on_breaking", 0, "fail", dp_breaking_policy_names), END};

static const struct key artifact_keys[] = {BOOL("enabled", "true"), STR("path", 0, NULL), /* default depends on name */
                                           INT("keep", 0, "20", 0, 100000), END};

static const struct key endpoint_keys[] = {STR("connection_id", REQUIRED, NULL),
                                           ENUM("connection_type", 0, "env", connection_types), END};

static const struct key metrics_keys[] = {STR("textfile_dir", 0, NULL), MAP("pushgateway", 0, endpoint_keys), END};

static const struct key lineage_keys[] = {STR("connection_id", 0, NULL),
                                          ENUM("connection_type", 0, "env", connection_types), STR("file", 0, NULL),
                                          STR("namespace", 0, "dpone"), END};

static const char *const log_formats[] = {"text", "json", NULL};

static const struct key observability_keys[] = {MAP("artifacts", AUTO, artifact_keys), MAP("metrics", 0, metrics_keys),
                                                MAP("lineage", 0, lineage_keys),
                                                ENUM("log_format", 0, "text", log_formats), END};

const struct key manifest_schema[] = {STR("name", REQUIRED, NULL),
                                      STR("description", 0, NULL),
                                      STR("contract", 0, NULL), /* a type contract file, relative to the manifest */
                                      MAP("source", REQUIRED, source_keys),
                                      MAP("sink", REQUIRED, sink_keys),
                                      MAP("state", AUTO, state_keys),
                                      MAP("quality", AUTO, quality_keys),
                                      MAP("schema_evolution", AUTO, evolution_keys),
                                      MAP("observability", AUTO, observability_keys),
                                      END};
