/* SPDX-License-Identifier: MIT */
/* The admin socket: a line protocol close to HAProxy's runtime API, commands in
 * a table with usage strings (so "help" is generated), answers ending with an
 * empty line, changes logged with the peer's uid and, with Redis, published to
 * every replica. Control thread only. */
#ifndef TETHER_ADMIN_H
#define TETHER_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct gen;

/* An answer being built. */
struct admin_out {
    char *data;
    size_t len;
    size_t cap;
    bool error; /* the answer is an error (tetherctl exits non-zero) */
};

/* Open, keep or move the admin socket for <g>'s settings. */
void admin_sync(struct gen *g);
void admin_stop(void);

/* Run one command line. <uid> is the peer (logged for changes); <replicated>
 * marks a change received from another replica (applied, not republished).
 * The answer is appended to <out>. */
void admin_exec(const char *line, struct admin_out *out, uid_t uid, bool replicated);

void admin_out_free(struct admin_out *out);

#endif
