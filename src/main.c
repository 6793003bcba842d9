/* SPDX-License-Identifier: MIT */
/* tether: options, start-up and shutdown order, exit codes. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/conf.h>
#include <tether/control.h>
#include <tether/cpu_limit.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/membership.h>
#include <tether/qsbr.h>
#include <tether/session_store.h>
#include <tether/sock.h>
#include <tether/stats.h>
#include <tether/tls.h>
#include <tether/upgrade.h>
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
    fprintf(f, "usage: tether [-c FILE] [-t] [-T] [-D] [-v] [-h]\n"
               "  -c FILE   configuration file (default " DEFAULT_CONF ")\n"
               "  -t        check the configuration and exit\n"
               "  -T        check it, print the effective configuration and exit\n"
               "  -D        list every configuration directive with its context and exit\n"
               "  -v        print the version and exit\n"
               "  -h        this help\n"
               "signals: HUP reload, TERM/INT graceful stop, USR1 reopen logs,\n"
               "         USR2 binary upgrade (start the executable anew, hand over, drain)\n");
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

/* A start-up failure: said on stderr and, when an upgrade started us, to the
 * process that keeps serving. */
static int
fail(const char *msg)
{
    fprintf(stderr, "tether: %s\n", msg);
    upgrade_child_fail(msg);
    upgrade_instance_unlock();
    return 1;
}

int
main(int argc, char **argv)
{
    const char *conf_path = DEFAULT_CONF;
    bool test_only = false;
    bool dump = false;
    struct err e = {{0}};
    int opt;

    sock_resolve_names(true);
    upgrade_init(argc, argv);
    while ((opt = getopt(argc, argv, "c:tTDvh")) != -1) {
        switch (opt) {
        case 'c':
            conf_path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'T':
            test_only = dump = true;
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
    sigaddset(&ctl_signals, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &ctl_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Started by a binary upgrade: take the sockets and state first, so the
     * old process is never kept waiting on a full socket. */
    if (!test_only && upgrade_child_recv(&e) < 0)
        return fail(e.msg);
    tls_global_init();
    struct conf *c = conf_load(conf_path, &e);
    if (!c)
        return fail(e.msg);
    uint32_t n = cpu_limit_workers(c->workers);
    if (stats_init(n + 1) < 0 || qsbr_init(n) < 0)
        return fail("out of memory");
    if (test_only) {
        /* Build everything but the sockets: certificates and key files too. */
        struct gen *g = gen_build(c, NULL, 0, 1, &e);
        if (!g) {
            fprintf(stderr, "tether: %s\n", e.msg);
            return 1;
        }
        if (dump) {
            /* As nginx -T: the text on stdout, the verdict on stderr. */
            fwrite(g->conf->text, 1, g->conf->text_len, stdout);
            fprintf(stderr, "tether: configuration %s ok (sha256 %s)\n", conf_path, g->conf->hash);
        } else {
            printf("tether: configuration %s ok\n", conf_path);
        }
        gen_unref(g);
        session_store_shutdown();
        return 0;
    }

    raise_nofile();
    /* One instance per pid file and admin socket (an upgrade inherits both). */
    if (upgrade_instance_lock(c, &e) < 0) {
        conf_free(c);
        return fail(e.msg);
    }
    uint32_t bufsize = (uint32_t)c->bufsize;
    if (workers_create(n, bufsize) < 0)
        return fail("cannot create the workers");
    struct gen *g = gen_build(c, NULL, n, 1, &e);
    if (!g)
        return fail(e.msg);
    if (control_apply_logs(g, &e) < 0) {
        gen_unref(g);
        return fail(e.msg);
    }
    gen_publish(g);
    workers_post(WMSG_GEN);
    if (upgrade_is_child()) {
        size_t nsess = upgrade_child_apply();
        control_replan();
        log_notice("upgrade: runtime state taken over (%zu learned sessions)", nsess);
    }
    if (workers_start() < 0)
        return fail("cannot start worker threads");
    log_notice("tether %s started: %u workers (from %s), configuration %s (sha256 %s)",
               PACKAGE_VERSION, n, cpu_limit_source, conf_path, g->conf->hash);
    if (!upgrade_is_child())
        upgrade_notify("READY=1");
    control_run(conf_path);
    workers_join();
    log_notice("tether stopped");

    struct gen *last = atomic_exchange(&gen_current, NULL);
    if (last)
        gen_listens_release(last);
    workers_destroy();
    if (last) {
        upgrade_instance_unlock();
        gen_unref(last);
    }
    gen_reap(); /* generations the workers let go since the last tick */
    qsbr_fini();
    membership_fini();
    session_store_shutdown();
    access_log_close();
    return 0;
}
