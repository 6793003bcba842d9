/* SPDX-License-Identifier: MIT */
/* tether entry point (placeholder until the process module lands). */
#include "config.h"

#include <stdio.h>

int
main(void)
{
    puts(PACKAGE_STRING);
    return 0;
}
