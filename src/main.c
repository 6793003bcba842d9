/* SPDX-License-Identifier: MIT */
/* tether: options, start-up and shutdown order, exit codes. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/control.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/membership.h>
#include <tether/qsbr.h>
#include <tether/sock.h>
#include <tether/stats.h>
#include <tether/tls.h>
#include <tether/worker.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define DEFAULT_CONF SYSCONFDIR "/tether/tether.conf"

static void
usage(FILE *f)
{
    fprintf(f, "usage: tether [-c FILE] [-t] [-D] [-v] [-h]\n"
               "  -c FILE   configuration file (default " DEFAULT_CONF ")\n"
               "  -t        check the configuration and exit\n"
               "  -D        list every configuration directive with its context and exit\n"
               "  -v        print the version and exit\n"
               "  -h        this help\n"
               "signals: HUP reload, TERM/INT graceful stop, USR1 reopen logs\n");
}

/* One line per directive: context, name, default ("-" when none), usage. */
static void
print_directive(void *ctx, const char *ctxname, const char *name, const char *usage_line,
                const char *dflt)
{
    (void)ctx;
    printf("%s\t%s\t%s\t%s\n", ctxname, name, dflt ? dflt : "-", usage_line);
}

static void
raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int
write_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "%ld\n", (long)getpid());
    return fclose(f);
}

int
main(int argc, char **argv)
{
    const char *conf_path = DEFAULT_CONF;
    bool test_only = false;
    struct err e = {{0}};
    int opt;

    sock_resolve_names(true);
    while ((opt = getopt(argc, argv, "c:tDvh")) != -1) {
        switch (opt) {
        case 'c':
            conf_path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'D':
            conf_dump_directives(print_directive, NULL);
            return 0;
        case 'v':
            printf("%s\n", PACKAGE_STRING);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tether: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* Signals stay pending until the control loop reads them (signalfd): a
     * SIGTERM or SIGHUP during start-up is handled, not fatal. */
    sigset_t ctl_signals;
    sigemptyset(&ctl_signals);
    sigaddset(&ctl_signals, SIGTERM);
    sigaddset(&ctl_signals, SIGINT);
    sigaddset(&ctl_signals, SIGHUP);
    sigaddset(&ctl_signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &ctl_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    tls_global_init();
    struct conf *c = conf_load(conf_path, &e);
    if (!c) {
        fprintf(stderr, "tether: %s\n", e.msg);
        return 1;
    }
    uint32_t n = c->workers;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (uint32_t)cpus : 1;
    }
    if (stats_init(n + 1) < 0 || qsbr_init(n) < 0) {
        fprintf(stderr, "tether: out of memory\n");
        return 1;
    }
    if (test_only) {
        /* Build everything but the sockets: certificates and key files too. */
        struct gen *g = gen_build(c, NULL, 0, 1, &e);
        if (!g) {
            fprintf(stderr, "tether: %s\n", e.msg);
            return 1;
        }
        gen_unref(g);
        affinity_shutdown();
        printf("tether: configuration %s ok\n", conf_path);
        return 0;
    }

    raise_nofile();
    uint32_t bufsize = (uint32_t)c->bufsize;
    if (workers_create(n, bufsize) < 0) {
        fprintf(stderr, "tether: cannot create %u workers\n", n);
        return 1;
    }
    struct gen *g = gen_build(c, NULL, n, 1, &e);
    if (!g) {
        fprintf(stderr, "tether: %s\n", e.msg);
        return 1;
    }
    if (control_apply_logs(g, &e) < 0) {
        fprintf(stderr, "tether: %s\n", e.msg);
        return 1;
    }
    if (g->conf->pidfile && write_pidfile(g->conf->pidfile) < 0) {
        fprintf(stderr, "tether: cannot write pidfile \"%s\": %s\n", g->conf->pidfile,
                strerror(errno));
        return 1;
    }
    gen_publish(g);
    if (workers_start() < 0) {
        fprintf(stderr, "tether: cannot start worker threads\n");
        return 1;
    }
    log_notice("tether %s started: %u workers, configuration %s", PACKAGE_VERSION, n, conf_path);
    control_run(conf_path);
    workers_join();
    log_notice("tether stopped");

    struct gen *last = atomic_exchange(&gen_current, NULL);
    if (last) {
        for (uint32_t i = 0; i < last->nlistens; i++) {
            listen_fds_unref(last->listens[i].socks);
            last->listens[i].socks = NULL;
        }
    }
    workers_destroy();
    if (last) {
        if (last->conf->pidfile)
            unlink(last->conf->pidfile);
        gen_unref(last);
    }
    qsbr_fini();
    membership_fini();
    affinity_shutdown();
    access_log_close();
    return 0;
}
