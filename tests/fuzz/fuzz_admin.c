/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the admin command parser: the input is split into lines,
 * each run through admin_exec against a small generation (two upstreams, regions,
 * servers), as a local peer or a replica (first byte). Every answer must be
 * well-formed: bounded, NUL-free, ending with an empty line unless the line was
 * blank, a comment or "quit". "reload" is left out (it re-reads the config file
 * from disk; the integration tests cover it). Replaced balancer plans are reclaimed
 * after each input, as the control thread's housekeeping does. */
#include "config.h"

#include <tether/admin.h>
#include <tether/conf.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/membership.h>
#include <tether/qsbr.h>
#include <tether/stats.h>
#include <tether/util.h>
#include <tether/worker.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char conf_text[] = "workers 1;\n"
                                "error_log stderr error;\n"
                                "upstream voice {\n"
                                "    region eu weight=70 priority=0;\n"
                                "    region us weight=30 priority=1;\n"
                                "    server pod-a 127.0.0.1:9 region=eu weight=2;\n"
                                "    server pod-b 127.0.0.1:10 region=eu;\n"
                                "    server pod-c 127.0.0.1:11 region=us;\n"
                                "}\n"
                                "upstream static { server cdn 127.0.0.1:12; }\n"
                                "server {\n"
                                "    listen 127.0.0.1:1;\n" /* never bound: no workers */
                                "    route / { upstream voice; }\n"
                                "    route /s/ { upstream static; }\n"
                                "}\n";

static int ready; /* 1: a generation is published; -1: setup failed */

static void
setup(void)
{
    struct err e = {{0}};
    struct conf *c;
    struct gen *g;

    if (ready)
        return;
    ready = -1;
    log_open("stderr", LOG_LVL_ERROR, false, &e);
    nworkers = 0; /* as "tether -t": a generation without workers or sockets */
    if (stats_init(1) < 0 || qsbr_init(0) < 0) {
        fprintf(stderr, "fuzz_admin: stats_init/qsbr_init failed\n");
        abort();
    }
    c = conf_parse_text(conf_text, sizeof(conf_text) - 1, "fuzz_admin.conf", &e);
    if (!c) {
        fprintf(stderr, "fuzz_admin: config: %s\n", e.msg);
        abort();
    }
    g = gen_build(c, NULL, 0, 1, &e);
    if (!g) {
        fprintf(stderr, "fuzz_admin: generation: %s\n", e.msg);
        abort();
    }
    gen_publish(g);
    ready = 1;
}

static int
is_reload(const char *line)
{
    while (*line == ' ' || *line == '\t' || *line == '\r')
        line++;
    return strncmp(line, "reload", 6) == 0;
}

static int
blank_or_comment(const char *line)
{
    while (*line == ' ' || *line == '\t' || *line == '\r' || *line == '\n')
        line++;
    return *line == '\0' || *line == '#';
}

static void
run_line(const char *line, const struct admin_peer *peer)
{
    struct admin_out out = {0};

    admin_exec(line, &out, peer);
    if (out.len > out.cap || (out.len && !out.data))
        abort();
    if (out.len && memchr(out.data, '\0', out.len))
        abort();
    if (out.len > (1u << 20))
        abort(); /* no answer to a 4 KiB line is a megabyte */
    if (blank_or_comment(line)) {
        if (out.len)
            abort(); /* blank lines and comments get no answer */
    } else if (out.len && (out.len < 1 || out.data[out.len - 1] != '\n' ||
                           (out.len >= 2 && out.data[out.len - 2] != '\n'))) {
        abort(); /* every answer ends with an empty line */
    }
    admin_out_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct admin_peer peer;
    char line[ADMIN_LINE_MAX + 1];

    setup();
    if (size < 1)
        return 0;
    memset(&peer, 0, sizeof(peer));
    snprintf(peer.who, sizeof(peer.who), "%s", (data[0] & 1) ? "replica fuzz" : "uid 0 pid 1");
    peer.replica = data[0] & 1;
    data++;
    size--;
    while (size) {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t n = nl ? (size_t)(nl - data) : size;
        size_t m = n < ADMIN_LINE_MAX ? n : ADMIN_LINE_MAX;
        memcpy(line, data, m);
        line[m] = '\0';
        /* an embedded NUL ends the line, as it would in a C string */
        if (!is_reload(line))
            run_line(line, &peer);
        if (!nl)
            break;
        data += n + 1;
        size -= n + 1;
    }
    /* Servers added or deleted by this input are forgotten, so every input
     * starts from the configured membership. */
    membership_fini();
    membership_sync(atomic_load(&gen_current));
    /* What the control thread's housekeeping does: free the plans that "set"
     * and "add"/"del" commands replaced (no workers here, so nothing still
     * reads them). */
    qsbr_reclaim();
    return 0;
}
