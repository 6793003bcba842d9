/* SPDX-License-Identifier: MIT */
/* The admin socket: a line protocol close to HAProxy's runtime API, commands in
 * a table with usage strings (so "help" is generated), answers ending with an
 * empty line, changes logged with the peer's uid and, with Redis, published to
 * every replica. Control thread only. */
#ifndef TETHER_ADMIN_H
#define TETHER_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gen;

/* Longest command line (bytes, without the newline). */
#define ADMIN_LINE_MAX 4095

/* An answer being built (heap, grown on demand). */
struct admin_out {
    char *data;
    size_t len;
    size_t cap;
    bool error; /* the answer is an error (tetherctl exits non-zero) */
};

/* Who sent a command: logged with every change. */
struct admin_peer {
    char who[112]; /* "uid 1000 pid 1234", "127.0.0.1:4000", "replica ID", "stored override" */
    bool replica;  /* received from another replica or Redis: applied, never republished;
                    * only "set" commands are accepted */
};

/* Open, keep or move the admin socket for <g>'s settings (close it when <g>
 * has no admin block). A socket that cannot be opened is logged; the old one,
 * if any, keeps serving. */
void admin_sync(struct gen *g);
/* Close the socket (unlinking its file if it is still ours) and every client. */
void admin_stop(void);
/* The listening socket (handed over by a binary upgrade), or -1. */
int admin_listen_fd(void);
/* The socket was handed over to a new process: closing it leaves the file. */
void admin_keep_file(void);

/* Run one command line for <peer> and append the answer (which ends with an
 * empty line) to <out>. An empty line or a "#" comment gives no answer. A local
 * change is logged and, with Redis configured, published to the replicas. */
void admin_exec(const char *line, struct admin_out *out, const struct admin_peer *peer);

void admin_out_free(struct admin_out *out);

/* ---- between admin.c (protocol, socket) and admin_cmd.c (commands) ---- */

/* A command being run. */
struct admin_ctx {
    struct admin_out *out;
    const struct admin_peer *peer;
    struct gen *g;  /* current generation (control thread: stays valid) */
    char note[256]; /* what a change did: its answer */
    bool changed;   /* a change altered the running state */
    bool quit;      /* close the connection after this command */
};

/* <argv> holds the <argc> arguments after the command's words; for "set"
 * commands argv[-2] is the UPSTREAM/NAME word matched by "*". 0, or -1 with an
 * error answer in c->out. */
typedef int (*admin_fn)(struct admin_ctx *c, int argc, char **argv);

struct admin_cmd {
    const char *words[4]; /* literal words, "*" for a name argument */
    admin_fn fn;
    bool change;       /* logged and published to the replicas */
    uint8_t min, max;  /* number of arguments after the words */
    const char *usage; /* for help and error answers */
    const char *help;  /* one line */
};

/* The command table (admin_cmd.c). */
extern const struct admin_cmd admin_cmds[];
extern const size_t admin_ncmds;

/* Append to an answer; admin_error adds an "error: " line and returns -1. */
void admin_printf(struct admin_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int admin_error(struct admin_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clients connected to the admin socket now. */
unsigned admin_nclients(void);

#endif
