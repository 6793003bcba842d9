/* SPDX-License-Identifier: MIT */
/* "workers auto": the CPU count, lowered to the cgroup CPU limit. The limit of
 * a cgroup is the smallest one on the way from the process's cgroup up to the
 * root of the mounted tree. */
#include "config.h"

#include <tether/cpu_limit.h>
#include <tether/util.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cpu_limit_source = "config";

/* A decimal integer (optionally negative) filling <s> up to white space. */
static int
parse_int(const char *s, const char **end, long long *out)
{
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (e == s || errno)
        return -1;
    *out = v;
    *end = e;
    return 0;
}

static bool
only_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return *s == '\0';
}

/* CPUs for <quota> µs every <period> µs, rounded up (at least 1). */
static int
from_quota(long long quota, long long period, uint32_t *cpus)
{
    if (period <= 0 || quota <= 0)
        return -1;
    unsigned long long n =
        ((unsigned long long)quota + (unsigned long long)period - 1) / (unsigned long long)period;
    *cpus = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return 1;
}

int
cpu_limit_parse_v2(const char *text, uint32_t *cpus)
{
    const char *p = text, *end;
    long long quota, period;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncmp(p, "max", 3) == 0 && (p[3] == ' ' || p[3] == '\t' || p[3] == '\n' || !p[3])) {
        p += 3;
        /* "max" alone or "max PERIOD": no limit. */
        if (!only_space(p) && (parse_int(p, &end, &period) < 0 || period <= 0 || !only_space(end)))
            return -1;
        return 0;
    }
    if (parse_int(p, &end, &quota) < 0 || (*end != ' ' && *end != '\t'))
        return -1;
    if (parse_int(end, &end, &period) < 0 || !only_space(end))
        return -1;
    return from_quota(quota, period, cpus);
}

int
cpu_limit_parse_v1(const char *quota_text, const char *period_text, uint32_t *cpus)
{
    const char *end;
    long long quota, period;
    if (parse_int(quota_text, &end, &quota) < 0 || !only_space(end))
        return -1;
    if (quota < 0)
        return 0; /* -1: no limit */
    if (parse_int(period_text, &end, &period) < 0 || !only_space(end))
        return -1;
    return from_quota(quota, period, cpus);
}

/* The first line of a small file, NUL-terminated; -1 when it cannot be read. */
static int
read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    return 0;
}

/* The process's cgroup path for the v2 tree (<controller> NULL) or for the v1
 * hierarchy holding <controller>, from /proc/self/cgroup; "/" when unknown. */
static void
own_cgroup(const char *controller, char *out, size_t cap)
{
    char line[1024];
    FILE *f = fopen("/proc/self/cgroup", "re");
    snprintf(out, cap, "/");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = '\0'; /* line: the hierarchy id */
        *c2 = '\0'; /* c1 + 1: its controllers */
        c2[1 + strcspn(c2 + 1, "\n")] = '\0';
        bool match = false;
        if (!controller) {
            match = strcmp(line, "0") == 0 && c1[1] == '\0';
        } else {
            char *save = NULL;
            for (char *t = strtok_r(c1 + 1, ",", &save); t; t = strtok_r(NULL, ",", &save))
                match |= strcmp(t, controller) == 0;
        }
        if (match) {
            snprintf(out, cap, "%s", c2 + 1);
            break;
        }
    }
    fclose(f);
}

/* Drop the last component of the cgroup path <p> ("/a/b" -> "/a" -> ""). */
static bool
path_up(char *p)
{
    char *s = strrchr(p, '/');
    if (!s || p[0] == '\0')
        return false;
    *s = '\0';
    return true;
}

/* The CPU limit a cgroup directory <dir><r> sets: 1 with *n, 0 none. */
typedef int (*level_limit_fn)(const char *dir, const char *r, uint32_t *n);

static int
level_v2(const char *dir, const char *r, uint32_t *n)
{
    char path[8448], text[128];
    snprintf(path, sizeof(path), "%s%s/cpu.max", dir, r);
    return read_small(path, text, sizeof(text)) == 0 && cpu_limit_parse_v2(text, n) == 1;
}

static int
level_v1(const char *dir, const char *r, uint32_t *n)
{
    char path[8448], quota[64], period[64];
    snprintf(path, sizeof(path), "%s%s/cpu.cfs_quota_us", dir, r);
    if (read_small(path, quota, sizeof(quota)) != 0)
        return 0;
    snprintf(path, sizeof(path), "%s%s/cpu.cfs_period_us", dir, r);
    return read_small(path, period, sizeof(period)) == 0 &&
           cpu_limit_parse_v1(quota, period, n) == 1;
}

/* The smallest limit <level> finds from <dir><rel> up to <dir>: 1 with
 * *cpus, 0 none. */
static int
limit_walk(const char *dir, char *rel, level_limit_fn level, uint32_t *cpus)
{
    int found = 0;
    for (;;) {
        uint32_t n;
        if (level(dir, strcmp(rel, "/") ? rel : "", &n) && (!found || n < *cpus)) {
            *cpus = n;
            found = 1;
        }
        if (strcmp(rel, "/") == 0 || !path_up(rel))
            break;
        if (rel[0] == '\0')
            snprintf(rel, 2, "/");
    }
    return found;
}

static uint32_t
cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (uint32_t)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (uint32_t)n : 1;
}

/* As "workers N" allows. */
#define WORKERS_MAX 256

uint32_t
cpu_limit_workers(uint32_t configured)
{
    static const char *const v1_dirs[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu"};
    const char *env = getenv("TETHER_CGROUP_ROOT");
    const char *root = env && *env ? env : CPU_LIMIT_CGROUP_ROOT;
    char rel[4096], path[4200];
    uint32_t cpus = MIN(cpu_count(), WORKERS_MAX), lim = 0;

    if (configured) {
        cpu_limit_source = "config";
        return configured;
    }
    cpu_limit_source = "cpus";
    snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
    if (access(path, F_OK) == 0) {
        if (env && *env)
            snprintf(rel, sizeof(rel), "/");
        else
            own_cgroup(NULL, rel, sizeof(rel));
        if (limit_walk(root, rel, level_v2, &lim) && lim < cpus) {
            cpu_limit_source = "cgroup v2";
            return lim;
        }
        return cpus;
    }
    for (size_t i = 0; i < ARRAY_SIZE(v1_dirs); i++) {
        snprintf(path, sizeof(path), "%s/%s", root, v1_dirs[i]);
        if (access(path, F_OK) < 0)
            continue;
        if (env && *env)
            snprintf(rel, sizeof(rel), "/");
        else
            own_cgroup("cpu", rel, sizeof(rel));
        if (limit_walk(path, rel, level_v1, &lim) && lim < cpus) {
            cpu_limit_source = "cgroup v1";
            return lim;
        }
        break;
    }
    return cpus;
}
