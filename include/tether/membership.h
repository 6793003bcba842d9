/* SPDX-License-Identifier: MIT */
/* Upstream membership: the servers an upstream has right now, from the
 * configuration, DNS discovery and the admin socket, built into a struct
 * members and published with the upstream's balancer plan (no new generation).
 * Servers that DNS or an operator drop are "leaving": no new sessions, pinned
 * sessions and tunnels go on until leave_timeout or a failed health check.
 * Control thread only. */
#ifndef TETHER_MEMBERSHIP_H
#define TETHER_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>

#include <tether/sock.h>
#include <tether/upstream.h>
#include <tether/util.h>

struct gen;

/* Build <u>'s membership from its configured servers and the runtime roster
 * (gen build, and every membership change; <at_start>: the first generation,
 * see server_rt_join()). NULL with <e> when out of memory. */
struct members *membership_build(struct upstream *u, bool at_start, struct err *e);

/* Add (or bring back from leaving) server <name> of upstream <up> at <addr>.
 * <region> NULL: the upstream's default region. 0, or -1 with <e> (unknown
 * upstream or region, a configured server's name, max_servers reached). The
 * current generation's membership is republished. */
int membership_add(const char *up, const char *name, const struct sock_addr *addr, uint32_t weight,
                   const char *region, unsigned source, struct err *e);

/* Remove server <name> of <up>: it leaves (no new sessions) or, with <now>, is
 * cut at once. 0, or -1 with <e>. */
int membership_del(const char *up, const char *name, bool now, struct err *e);

/* One discovered address of a DNS name. */
struct disc_addr {
    struct sock_addr addr;
    uint32_t weight; /* SRV weight scaled to server weights, else 1 */
};

/* The addresses DNS gives now for discover line <tag> (its name) of <up>:
 * new ones join, known ones stay (or come back from leaving), missing ones
 * leave. Addresses beyond max_servers are refused and counted. */
void membership_dns_set(const char *up, const char *tag, const char *region,
                        const struct disc_addr *a, uint32_t n);

/* Leaving servers whose leave_timeout passed or whose health check failed are
 * removed. Called by the control tick. */
void membership_tick(uint64_t now_ms);

/* A new generation is current: configured servers win over roster entries of
 * the same name, deletions of configured servers are forgotten. */
void membership_sync(struct gen *g);

/* Servers refused because an upstream was at max_servers, since start. */
uint64_t membership_refused(void);

/* Sessions pinned to each server of <m> (by server index): learned-table
 * entries naming it plus its tunnels, in one scan of the table. A malloc'ed
 * array for the caller to free, or NULL when out of memory. */
uint64_t *membership_pinned(const struct members *m);

/* Binary upgrade: the roster (discovered and admin-added servers, deleted
 * configured ones, with their leaving state) as lines "dyn ..." for the new
 * process, each passed to <emit>. */
void membership_state_out(void (*emit)(void *ctx, const char *line), void *ctx);

/* The new process: one "dyn" line of the old one into the roster (no publish
 * yet). 0, or -1 for a malformed line or out of memory. */
int membership_state_in(const char *line);

/* After the last membership_state_in(): every upstream's membership is built
 * again, before the control loop runs (its health checks start with it). */
void membership_state_done(void);

/* Free the roster (shutdown). */
void membership_fini(void);

#endif
