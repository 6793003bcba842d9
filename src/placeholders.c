/* SPDX-License-Identifier: MIT */
/* Temporary no-op admin, stats listener and health checks while those modules
 * are being written. */
#include "config.h"

#include <tether/admin.h>
#include <tether/health.h>
#include <tether/stats_http.h>

void
admin_sync(struct gen *g)
{
    (void)g;
}

void
admin_stop(void)
{
}

void
stats_http_sync(struct gen *g)
{
    (void)g;
}

void
stats_http_stop(void)
{
}

void
health_sync(struct gen *g)
{
    (void)g;
}

void
health_stop(void)
{
}
