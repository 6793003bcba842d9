/* SPDX-License-Identifier: MIT */
/* Unit tests for src/cpu_limit.c: the cgroup v2 cpu.max and v1 CFS quota
 * parsers, and "workers auto" over fake cgroup trees (TETHER_CGROUP_ROOT). */
#include "config.h"

#include <tether/cpu_limit.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

static void
test_parse_v2(void)
{
    uint32_t n = 0;
    CHECK_INT_EQ(cpu_limit_parse_v2("max 100000", &n), 0);
    CHECK_INT_EQ(cpu_limit_parse_v2("max 100000\n", &n), 0);
    CHECK_INT_EQ(cpu_limit_parse_v2("max", &n), 0);
    CHECK_INT_EQ(cpu_limit_parse_v2("200000 100000", &n), 1);
    CHECK_UINT_EQ(n, 2);
    CHECK_INT_EQ(cpu_limit_parse_v2("150000 100000\n", &n), 1);
    CHECK_UINT_EQ(n, 2); /* 1.5 CPUs: rounded up */
    CHECK_INT_EQ(cpu_limit_parse_v2("50000 100000", &n), 1);
    CHECK_UINT_EQ(n, 1); /* half a CPU: one worker */
    CHECK_INT_EQ(cpu_limit_parse_v2("6400000 100000", &n), 1);
    CHECK_UINT_EQ(n, 64);
    CHECK_INT_EQ(cpu_limit_parse_v2("100001 100000", &n), 1);
    CHECK_UINT_EQ(n, 2);
    /* Malformed: refused, never a guess. */
    CHECK_INT_EQ(cpu_limit_parse_v2("", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v2("200000", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v2("200000 0", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v2("0 100000", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v2("-5 100000", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v2("2x 100000", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v2("200000 100000 7", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v2("maxi 100000", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v2("max x", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v2("99999999999999999999999 1", &n), -1);
}

static void
test_parse_v1(void)
{
    uint32_t n = 0;
    CHECK_INT_EQ(cpu_limit_parse_v1("-1\n", "100000\n", &n), 0);
    CHECK_INT_EQ(cpu_limit_parse_v1("200000\n", "100000\n", &n), 1);
    CHECK_UINT_EQ(n, 2);
    CHECK_INT_EQ(cpu_limit_parse_v1("250000", "100000", &n), 1);
    CHECK_UINT_EQ(n, 3);
    CHECK_INT_EQ(cpu_limit_parse_v1("1000", "100000", &n), 1);
    CHECK_UINT_EQ(n, 1);
    CHECK_INT_EQ(cpu_limit_parse_v1("", "100000", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v1("200000", "0", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v1("200000", "abc", &n), -1);
    CHECK_INT_EQ(cpu_limit_parse_v1("0", "100000", &n), -1);
}

static char root[256];

static void
put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    if (!f) {
        UNIT_FAIL("cannot write %s", path);
        return;
    }
    fputs(text, f);
    fclose(f);
}

static uint32_t
ncpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return (uint32_t)CPU_COUNT(&set);
    return (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
}

static void
test_workers_from_fake_trees(void)
{
    char path[512];
    uint32_t cpus = ncpus();
    snprintf(root, sizeof(root), "/tmp/tether-cg-%ld", (long)getpid());
    mkdir(root, 0700);
    setenv("TETHER_CGROUP_ROOT", root, 1);

    /* "workers N" wins over everything. */
    CHECK_UINT_EQ(cpu_limit_workers(3), 3);
    CHECK_STR_EQ(cpu_limit_source, "config");

    /* No cgroup files at all: the CPU count. */
    CHECK_UINT_EQ(cpu_limit_workers(0), cpus);
    CHECK_STR_EQ(cpu_limit_source, "cpus");

    /* cgroup v2, limited to one CPU (every machine has one). */
    put("cgroup.controllers", "cpuset cpu io memory pids\n");
    put("cpu.max", "100000 100000\n");
    CHECK_UINT_EQ(cpu_limit_workers(0), 1);
    CHECK_STR_EQ(cpu_limit_source, cpus > 1 ? "cgroup v2" : "cpus");
    put("cpu.max", "max 100000\n");
    CHECK_UINT_EQ(cpu_limit_workers(0), cpus);
    CHECK_STR_EQ(cpu_limit_source, "cpus");
    /* A limit above the CPU count: never more workers than CPUs. */
    put("cpu.max", "100000000 100000\n");
    CHECK_UINT_EQ(cpu_limit_workers(0), cpus);
    CHECK_STR_EQ(cpu_limit_source, "cpus");
    put("cpu.max", "garbage\n");
    CHECK_UINT_EQ(cpu_limit_workers(0), cpus);
    snprintf(path, sizeof(path), "%s/cpu.max", root);
    unlink(path);
    snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
    unlink(path);

    /* cgroup v1: the cpu hierarchy's CFS quota. */
    snprintf(path, sizeof(path), "%s/cpu,cpuacct", root);
    mkdir(path, 0700);
    put("cpu,cpuacct/cpu.cfs_quota_us", "50000\n");
    put("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    CHECK_UINT_EQ(cpu_limit_workers(0), 1);
    CHECK_STR_EQ(cpu_limit_source, cpus > 1 ? "cgroup v1" : "cpus");
    put("cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    CHECK_UINT_EQ(cpu_limit_workers(0), cpus);
    CHECK_STR_EQ(cpu_limit_source, "cpus");

    put("cpu,cpuacct/cpu.cfs_quota_us", "");
    snprintf(path, sizeof(path), "rm -rf '%s'", root);
    CHECK_INT_EQ(system(path), 0);
    unsetenv("TETHER_CGROUP_ROOT");
}

int
main(void)
{
    RUN(test_parse_v2);
    RUN(test_parse_v1);
    RUN(test_workers_from_fake_trees);
    return unit_summary();
}
