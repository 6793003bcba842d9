/* SPDX-License-Identifier: MIT */
/* Binary upgrade without dropping a connection, and one instance per config.
 * The running process starts the new executable with one end of a socketpair
 * (TETHER_UPGRADE_FD); over it go the listening sockets (SCM_RIGHTS), the pid
 * file lock and the runtime state (admin overrides, health, learned sessions),
 * and back comes "ok PID" once the new process serves, or "error WHY". Only then
 * does the old one stop accepting and drain. upgrade.c is the old side,
 * upgrade_child.c the new side and the instance lock. */
#ifndef TETHER_UPGRADE_H
#define TETHER_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/util.h>

struct conf;

/* Environment variable carrying the hand-over socket to the new process. */
#define UPGRADE_ENV "TETHER_UPGRADE_FD"
/* Protocol version in the first message. */
#define UPGRADE_PROTO 1
/* Largest hand-over message (bytes of text lines; SOCK_SEQPACKET keeps them). */
#define UPGRADE_MSG_MAX 65536
/* Most runtime-state bytes the new process accepts. */
#define UPGRADE_STATE_MAX (512u << 20)

/* ---- the running process (upgrade.c, control thread) ---- */

/* Remember how this process was started (the executable's path, resolved now,
 * and the arguments) so an upgrade starts the file now at that path. */
void upgrade_init(int argc, char **argv);

/* Start the executable <path> (NULL: the one this process was started from)
 * as the new process and hand it the listening sockets of the current
 * generation, <admin_fd> and <stats_fd> (-1 when none) and the runtime state.
 * Waits at most the configured upgrade_timeout. Returns 0 once the new process
 * serves (<msg> says which), or -1 with <msg> saying why; then nothing changed
 * here and the new process is gone. */
int upgrade_start(const char *path, int admin_fd, int stats_fd, char *msg, size_t msglen);

/* This process handed over to a new one (which owns the pid file from now). */
bool upgrade_handed_over(void);

/* Send <state> to systemd's notification socket ($NOTIFY_SOCKET), if any. */
void upgrade_notify(const char *state);

/* ---- the new process (upgrade_child.c) ---- */

/* Started by an upgrade: receive the sockets (offered to sock_listen through
 * sock_adopt) and the runtime state. 1 when started by an upgrade, 0 when not,
 * -1 with <e>. */
int upgrade_child_recv(struct err *e);
/* Started by an upgrade and not yet serving. */
bool upgrade_is_child(void);
/* Tell the old process why this one gives up (the caller then exits). */
void upgrade_child_fail(const char *why);
/* Apply the received runtime state to the current generation's servers and
 * the session table. Returns the number of sessions restored. */
size_t upgrade_child_apply(void);
/* Serving now (control loop running): tell the old process and systemd. */
void upgrade_child_ready(void);

/* One instance per config: take the pid file's lock (held for the process's
 * life, inherited across an upgrade) and write the pid; refuse when another
 * process holds it or answers on the admin socket. 0, or -1 with <e> naming
 * the running pid. */
int upgrade_instance_lock(const struct conf *c, struct err *e);
/* At exit (or a failed start): remove the pid file unless a new process took
 * over or the old one still serves, and drop the lock. */
void upgrade_instance_unlock(void);

/* ---- between upgrade.c and upgrade_child.c ---- */

/* The pid file's descriptor (locked), or -1. */
extern int upgrade_lock_fd;
/* Hand-over socket to the process we replaced while it drains, or -1. */
extern int upgrade_pred_fd;
/* Pid of that process. */
extern long upgrade_pred_pid;

/* Write this process's pid into the locked pid file. */
void upgrade_pidfile_write(void);

#endif
