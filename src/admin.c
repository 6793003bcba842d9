/* SPDX-License-Identifier: MIT */
/* The admin socket (being written; no-op until then). */
#include "config.h"

#include <tether/admin.h>

void
admin_sync(struct gen *g)
{
    (void)g;
}

void
admin_stop(void)
{
}
