/* SPDX-License-Identifier: MIT */
/* Active health checks (being written; no-op until then). */
#include "config.h"

#include <tether/health.h>

void
health_sync(struct gen *g)
{
    (void)g;
}

void
health_stop(void)
{
}
