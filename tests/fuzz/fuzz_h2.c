/* SPDX-License-Identifier: MIT */
/* libFuzzer target for HTTP/2 from clients: the input is the byte stream a
 * client sends after the connection preface (frames, HPACK blocks, DATA), fed
 * through a socket pair into an HTTP/2 connection of a worker-like context
 * (its own event loop, buffer pool and a generation built from a small
 * config). Streams that pass the checks become exchanges of the request path
 * (an extended CONNECT goes over a lane), whose pod (127.0.0.1:9) refuses.
 * The loop runs a bounded number of turns; then every connection, lane and
 * tunnel is closed, so each input starts clean. Nothing may crash, leak or
 * hang. */
#include "config.h"

#include <tether/client.h>
#include <tether/conf.h>
#include <tether/gen.h>
#include <tether/h2.h>
#include <tether/log.h>
#include <tether/qsbr.h>
#include <tether/stats.h>
#include <tether/tunnel.h>
#include <tether/upstream_conn.h>
#include <tether/util.h>
#include <tether/worker.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char conf_text[] = "workers 1;\n"
                                "error_log stderr error;\n"
                                "affinity { cookie VOICE_AFFINITY; }\n"
                                "upstream voice { server pod-a 127.0.0.1:9; }\n"
                                "server {\n"
                                "    listen 127.0.0.1:1 h2c;\n" /* never bound */
                                "    http2_max_header_list_size 4k;\n"
                                "    http2_max_control_frames 64;\n"
                                "    http2_max_resets 16;\n"
                                "    route = /sdp { upstream voice; affinity cookie; }\n"
                                "    route / { upstream voice; }\n"
                                "}\n";

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static struct worker w;
static struct gen *g;
static struct sock_addr peer;
static int ready;

static void
setup(void)
{
    struct err e = {{0}};
    struct conf *c;

    if (ready)
        return;
    ready = -1;
    atomic_store(&log_level, LOG_LVL_ERROR); /* errors only, to stderr (the default target) */
    nworkers = 0;                            /* a generation without sockets */
    if (stats_init(1) < 0 || qsbr_init(0) < 0)
        abort();
    c = conf_parse_text(conf_text, sizeof(conf_text) - 1, "fuzz_h2.conf", &e);
    if (!c) {
        fprintf(stderr, "fuzz_h2: config: %s\n", e.msg);
        abort();
    }
    g = gen_build(c, NULL, 0, 1, &e);
    if (!g) {
        fprintf(stderr, "fuzz_h2: generation: %s\n", e.msg);
        abort();
    }
    w.id = 0;
    w.loop = ev_loop_new(EVFLAG_AUTO);
    w.gen = g;
    list_init(&w.listens);
    list_init(&w.clients);
    list_init(&w.tunnels);
    list_init(&w.h2conns);
    buf_pool_init(&w.bufs, 16384, 64);
    access_buf_init(&w.alog, 64 * 1024);
    w.scratch = malloc(16384);
    w.rng = 0x9e3779b97f4a7c15ull;
    if (!w.loop || !w.scratch || sock_addr_parse(&peer, "127.0.0.1:40000", 0, &e) < 0)
        abort();
    ready = 1;
}

/* Close everything the input left open. */
static void
cleanup(void)
{
    struct list *pos, *tmp;
    h2_close_all(&w);
    list_for_each_safe(pos, tmp, &w.clients)
    {
        client_close(container_of(pos, struct client, link), TERM_SHUTDOWN);
    }
    tunnel_close_all(&w);
    upconn_pools_close(&w);
    if (w.nh2 || w.nclients || w.ntunnels)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sp[2];
    char sink[16384];
    size_t off = 0;

    setup();
    if (size > 65536)
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0)
        abort();
    if (write(sp[1], preface, sizeof(preface) - 1) != (ssize_t)(sizeof(preface) - 1))
        abort();
    h2_adopt_fd(&w, &g->vservers[0], sp[0], &peer);
    for (int turn = 0; turn < 64; turn++) {
        if (off < size) {
            ssize_t n = write(sp[1], data + off, size - off);
            if (n > 0)
                off += (size_t)n;
        }
        ev_run(w.loop, EVRUN_NOWAIT);
        while (read(sp[1], sink, sizeof(sink)) > 0)
            ;
        if (w.nh2 == 0)
            break;
    }
    close(sp[1]);
    ev_run(w.loop, EVRUN_NOWAIT);
    cleanup();
    return 0;
}
