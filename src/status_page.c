/* SPDX-License-Identifier: MIT */
/* (being written) */
#include "config.h"
