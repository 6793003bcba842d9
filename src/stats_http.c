/* SPDX-License-Identifier: MIT */
/* The stats listener (being written; no-op until then). */
#include "config.h"

#include <tether/stats_http.h>

void
stats_http_sync(struct gen *g)
{
    (void)g;
}

void
stats_http_stop(void)
{
}
