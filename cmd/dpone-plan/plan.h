/* plan.h: the parts of dpone-plan, private to it. */
#ifndef PLAN_H
#define PLAN_H

#include <stdio.h>

#include "dpone.h"

/* main.c: run a stage and parse the JSON it prints (owned); a failed
 * stage's exit status (its message already on stderr) is the plan's. */
json_t *ask_stage(char *const argv[]);

/* markdown.c: the plan document (main.c builds it; its keys are listed in
 * dpone-plan(1)) written as Markdown for a pull request or a terminal. */
void plan_markdown(FILE *out, const json_t *plan);

/* doctor.c: check that a run of the manifest can work from here; prints
 * the report (text, or JSON when json) and returns 0 or the exit status of
 * the first check that blocks a run. */
int doctor(const struct dp_manifest *m, const char *manifest_path, int json);

/* physical.c: the topic design for the manifest's sink (owned JSON),
 * throughput in messages/s (0: the table in 5 minutes). */
json_t *physical_plan(const struct dp_manifest *m, const char *manifest_path, double throughput);
void physical_markdown(FILE *out, const json_t *plan);

#endif
