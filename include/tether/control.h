/* SPDX-License-Identifier: MIT */
/* The control thread: signals, config (re)load, the periodic tick (plan
 * rebuilds, ejection expiry, reclamation, session expiry), active health
 * checks, the admin socket, the stats listener and the Redis subscriber. */
#ifndef TETHER_CONTROL_H
#define TETHER_CONTROL_H

#include <stdbool.h>
#include <stdint.h>
#include <ev.h>

#include <tether/util.h>

struct gen;

struct control {
    struct ev_loop *loop;
    const char *conf_path; /* file to (re)load */
    uint64_t next_gen_id;
    ev_signal sighup, sigterm, sigint, sigusr1;
    ev_signal sigusr2;   /* binary upgrade */
    ev_timer handed;     /* after a binary upgrade: drain on the next loop turn */
    ev_timer tick;       /* 100 ms */
    ev_timer stop_timer; /* shutdown_timeout */
    ev_timer stop_poll;  /* waits for workers to finish */
    bool stopping;
    uint64_t reloads_ok, reloads_failed;
    uint64_t last_reload_ms; /* wall clock */
    char last_reload_error[512];
    uint64_t started_ms; /* wall clock */
};

extern struct control ctl;

/* Run the control loop until shutdown completes. */
int control_run(const char *conf_path);

/* Reload the config now (SIGHUP, admin "reload"). 0, or -1 with <e>. */
int control_reload(struct err *e);

/* Binary upgrade (SIGUSR2, admin "upgrade"): start <path> (NULL: the
 * executable this process was started from), hand it the sockets and state,
 * and drain once it serves. 0 with <msg> saying so, or -1 with <msg> saying why
 * (this process then serves on as before). */
int control_upgrade(const char *path, char *msg, size_t msglen);

/* Begin graceful shutdown. */
void control_stop(void);

/* Rebuild every upstream's plan now (after an admin or health change), so the
 * very next request on every worker sees it. */
void control_replan(void);

/* Apply the process-level settings of a generation (logs, access log). */
int control_apply_logs(const struct gen *g, struct err *e);

#endif
