/* SPDX-License-Identifier: MIT */
/* tetherctl: the admin socket client (being written). */
#include "config.h"

#include <stdio.h>

int
main(void)
{
    fprintf(stderr, "tetherctl: not built yet\n");
    return 1;
}
