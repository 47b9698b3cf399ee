/* plan.h: the parts of dpone-plan, private to it. */
#ifndef PLAN_H
#define PLAN_H

#include <stdio.h>

#include "dpone.h"

/* markdown.c: the plan document (main.c builds it; its keys are listed in
 * dpone-plan(1)) written as Markdown for a pull request or a terminal. */
void plan_markdown(FILE *out, const json_t *plan);

#endif
