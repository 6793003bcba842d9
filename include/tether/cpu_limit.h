/* SPDX-License-Identifier: MIT */
/* How many workers "workers auto" starts: the CPUs this process may run on,
 * lowered to the container's CPU limit (cgroup v2 cpu.max, v1 CFS quota),
 * rounded up. */
#ifndef TETHER_CPU_LIMIT_H
#define TETHER_CPU_LIMIT_H

#include <stdint.h>

/* Where the cgroup tree is looked for; TETHER_CGROUP_ROOT overrides it (and
 * then names the process's own cgroup directory: tests point it at a fake tree). */
#define CPU_LIMIT_CGROUP_ROOT "/sys/fs/cgroup"

/* Where the number of workers came from: "config", "cpus", "cgroup v2" or
 * "cgroup v1". Set by cpu_limit_workers. */
extern const char *cpu_limit_source;

/* The text of a cgroup v2 cpu.max ("max 100000", "200000 100000"): the CPUs it
 * allows, rounded up, in <*cpus>. 1 when limited, 0 when unlimited, -1 when
 * malformed. */
int cpu_limit_parse_v2(const char *text, uint32_t *cpus);

/* cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us texts ("-1" is unlimited);
 * results as cpu_limit_parse_v2. */
int cpu_limit_parse_v1(const char *quota, const char *period, uint32_t *cpus);

/* Workers to start: <configured> when not 0 ("workers N"), else the CPU count
 * (sched_getaffinity) lowered to the cgroup limit. Never 0. Sets
 * cpu_limit_source. */
uint32_t cpu_limit_workers(uint32_t configured);

#endif
