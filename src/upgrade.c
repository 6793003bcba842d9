/* SPDX-License-Identifier: MIT */
/* Binary upgrade, the running side: start the new executable, hand it the
 * listening sockets and the runtime state, wait for its verdict. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/gen.h>
#include <tether/log.h>
#include <tether/membership.h>
#include <tether/session.h>
#include <tether/session_store.h>
#include <tether/upgrade.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

extern char **environ;

int upgrade_lock_fd = -1;
int upgrade_pred_fd = -1;
long upgrade_pred_pid;

static struct {
    char exe[4096]; /* executable path resolved at start */
    char **argv;    /* arguments at start (they live as long as the process) */
    int argc;
    bool handed_over; /* a new process took over */
    int succ_fd;      /* hand-over socket to the new process: open until we exit */
} up = {.succ_fd = -1};

void
upgrade_init(int argc, char **argv)
{
    ssize_t n = readlink("/proc/self/exe", up.exe, sizeof(up.exe) - 1);
    if (n <= 0 || (size_t)n >= sizeof(up.exe) - 1)
        snprintf(up.exe, sizeof(up.exe), "%s", argv[0]);
    else
        up.exe[n] = '\0';
    up.argc = argc;
    up.argv = argv;
}

bool
upgrade_handed_over(void)
{
    return up.handed_over;
}

void
upgrade_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len;
    if (!path || (path[0] != '/' && path[0] != '@') || (len = strlen(path)) >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        log_debug("sd_notify: %s", strerror(errno));
    close(fd);
}

/* ---- messages: text lines, many per SOCK_SEQPACKET message ---- */

struct out {
    int fd;
    char buf[UPGRADE_MSG_MAX];
    size_t len;
    int err; /* first errno, 0 while all went well */
};

static void
out_flush(struct out *o)
{
    if (o->len && !o->err && send(o->fd, o->buf, o->len, MSG_NOSIGNAL) < 0)
        o->err = errno ? errno : EIO;
    o->len = 0;
}

static void
out_line(struct out *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 1)
        return; /* cannot happen with bounded keys; never send half a line */
    line[n++] = '\n';
    if (o->len + (size_t)n > sizeof(o->buf))
        out_flush(o);
    memcpy(o->buf + o->len, line, (size_t)n);
    o->len += (size_t)n;
}

/* One message "fd KIND" carrying <fd>. */
static void
out_fd(struct out *o, const char *kind, int fd)
{
    char text[64];
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cm;
    struct iovec iov = {text, (size_t)snprintf(text, sizeof(text), "fd %s\n", kind)};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
    out_flush(o);
    memset(&cm, 0, sizeof(cm));
    cm.h.cmsg_level = SOL_SOCKET;
    cm.h.cmsg_type = SCM_RIGHTS;
    cm.h.cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(&cm.h), &fd, sizeof(int));
    if (!o->err && sendmsg(o->fd, &mh, MSG_NOSIGNAL) < 0)
        o->err = errno ? errno : EIO;
}

/* Keys and labels go at the end of a line: anything but a newline is fine. */
static bool
key_ok(const char *k)
{
    return strchr(k, '\n') == NULL && strlen(k) < 900;
}

static void
emit_line(void *o, const char *line)
{
    out_line(o, "%s", line);
}

/* Everything the new process takes over, in order: sockets, then state. */
static void
send_all(struct out *o, const struct gen *g, int admin_fd, int stats_fd)
{
    out_line(o, "tether-upgrade %d %ld", UPGRADE_PROTO, (long)getpid());
    out_flush(o);
    for (uint32_t i = 0; g && i < g->nlistens; i++) {
        const struct listen_fds *l = g->listens[i].socks;
        for (uint32_t k = 0; l && k < l->nfds; k++)
            if (l->fds[k] >= 0)
                out_fd(o, "listen", l->fds[k]);
    }
    if (admin_fd >= 0)
        out_fd(o, "admin", admin_fd);
    if (stats_fd >= 0)
        out_fd(o, "stats", stats_fd);
    if (upgrade_lock_fd >= 0)
        out_fd(o, "lock", upgrade_lock_fd);
    /* The roster first: discovered and admin-added servers are in the new
     * process's membership, with their leaving state, before it serves (a
     * call pinned to a discovered pod must not wait for DNS and a first
     * health check there). */
    membership_state_out(emit_line, o);
    /* Then admin overrides, health, ejections, slow start and whether it
     * still waits for its first check, by "upstream/server" key, of every
     * server. */
    for (uint32_t i = 0; g && i < g->nupstreams; i++) {
        const struct upstream *u = &g->upstreams[i];
        const struct members *m = u->members;
        for (uint32_t s = 0; s < m->nservers; s++) {
            const struct server_rt *rt = m->servers[s]->rt;
            if (!key_ok(rt->key))
                continue;
            out_line(o, "srv %d %u %u %llu %s", (int)atomic_load(&rt->weight_admin),
                     (unsigned)atomic_load(&rt->admin), (unsigned)atomic_load(&rt->health),
                     (unsigned long long)atomic_load(&rt->ejected_until_ms), rt->key);
            out_line(o, "since %llu %u %s", (unsigned long long)atomic_load(&rt->usable_since_ms),
                     (unsigned)atomic_load(&rt->hc_unchecked), rt->key);
        }
        for (uint32_t r = 0; r < u->nregions; r++) {
            const struct region_rt *rt = u->regions[r].rt;
            if (key_ok(rt->key))
                out_line(o, "reg %d %s", (int)atomic_load(&rt->weight_admin), rt->key);
        }
    }
    /* Learned sessions (expiry on the monotonic clock, which both share). */
    struct session_table *t = session_store_table();
    if (t) {
        size_t max = session_table_count(t) + 1024, n;
        struct session_entry *es = malloc(max * sizeof(*es));
        if (es) {
            n = session_table_dump(t, time_mono_ms(), es, max);
            for (size_t i = 0; i < n; i++)
                out_line(o, "sess %llx %llx %llu =%s", (unsigned long long)es[i].key,
                         (unsigned long long)es[i].server_id, (unsigned long long)es[i].expires_ms,
                         es[i].id);
            free(es);
        } else {
            log_warn("upgrade: out of memory: learned sessions are not handed over");
        }
    }
    out_line(o, "end");
    out_flush(o);
}

/* ---- starting the new process ---- */

/* environ plus UPGRADE_ENV=<fd> (heap; NULL when out of memory). */
static char **
child_env(int fd)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof(*env));
    static char var[64];
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], UPGRADE_ENV "=", sizeof(UPGRADE_ENV)) != 0)
            env[k++] = environ[i];
    snprintf(var, sizeof(var), "%s=%d", UPGRADE_ENV, fd);
    env[k] = var;
    return env;
}

/* "exited with status 1", "killed by signal 9". */
static void
describe_status(int status, char *out, size_t len)
{
    if (WIFEXITED(status))
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, len, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, len, "ended (status %d)", status);
}

/* Reap <child>, which is about to exit; killed when it is still there at
 * <deadline>. */
static void
reap(pid_t child, uint64_t deadline, int *status)
{
    while (waitpid(child, status, WNOHANG) == 0) {
        if (time_mono_ms() >= deadline) {
            kill(child, SIGKILL);
            waitpid(child, status, 0);
            return;
        }
        usleep(5000);
    }
}

/* Wait for "ok PID" / "error WHY" until <deadline>. 1 ok, 0 error (<msg>). */
static int
await_verdict(int fd, pid_t child, uint64_t deadline, long *newpid, char *msg, size_t msglen)
{
    char buf[1024];
    for (;;) {
        uint64_t now = time_mono_ms();
        int status;
        if (now >= deadline) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            snprintf(msg, msglen, "the new process did not start serving within upgrade_timeout");
            return 0;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)MIN(deadline - now, 1000));
        if (r < 0 && errno != EINTR) {
            snprintf(msg, msglen, "poll: %s", strerror(errno));
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            return 0;
        }
        if (r <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            buf[n] = '\0';
            buf[strcspn(buf, "\n")] = '\0';
            if (strncmp(buf, "ok ", 3) == 0) {
                *newpid = strtol(buf + 3, NULL, 10);
                return 1;
            }
            snprintf(msg, msglen, "%.500s", strncmp(buf, "error ", 6) == 0 ? buf + 6 : buf);
            reap(child, deadline, &status);
            return 0;
        }
        /* EOF: it ended without a word. */
        char how[64];
        reap(child, deadline, &status);
        describe_status(status, how, sizeof(how));
        snprintf(msg, msglen, "the new process %s before serving", how);
        return 0;
    }
}

int
upgrade_start(const char *path, int admin_fd, int stats_fd, char *msg, size_t msglen)
{
    struct gen *g = atomic_load(&gen_current);
    const char *exe = path && *path ? path : up.exe;
    int sv[2];
    char why[600];
    if (up.handed_over) {
        snprintf(msg, msglen, "this process already handed over to a new one and is draining");
        return -1;
    }
    if (getpid() == 1) {
        /* The new process would be our child: when we exit after draining,
         * the container (or namespace) ends and takes it along. */
        snprintf(msg, msglen,
                 "upgrade refused: tether runs as pid 1 (a container?), whose exit "
                 "would end the new process too; replace the container instead");
        return -1;
    }
    if (upgrade_pred_fd >= 0) {
        struct pollfd p = {.fd = upgrade_pred_fd, .events = POLLIN | POLLRDHUP};
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
            close(upgrade_pred_fd);
            upgrade_pred_fd = -1;
        } else {
            snprintf(msg, msglen,
                     "upgrade refused: the previous process (pid %ld) is still draining its "
                     "connections; try again once it has exited (at most shutdown_timeout)",
                     upgrade_pred_pid);
            return -1;
        }
    }
    if (access(exe, X_OK) < 0) {
        snprintf(msg, msglen, "cannot execute \"%s\": %s", exe, strerror(errno));
        return -1;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(msg, msglen, "socketpair: %s", strerror(errno));
        return -1;
    }
    /* Everything the child needs is prepared before fork: only exec after. */
    char **env = child_env(sv[1]);
    char **argv = calloc((size_t)up.argc + 1, sizeof(*argv));
    if (!env || !argv) {
        free(env);
        free(argv);
        close(sv[0]);
        close(sv[1]);
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    for (int i = 0; i < up.argc; i++)
        argv[i] = up.argv[i];
    argv[0] = (char *)exe;
    log_notice("upgrade: starting %s", exe);
    pid_t child = fork();
    if (child == 0) {
        /* The signal mask is inherited on purpose: signals sent before the new
         * process reads them stay pending instead of killing it. */
        int keep = sv[1];
        /* Descriptors a library opened without close-on-exec (a Redis
         * connection) must not live on in the new process. */
        if (keep > 3)
            close_range(3, (unsigned)keep - 1, 0);
        close_range((unsigned)keep + 1, ~0u, 0);
        fcntl(keep, F_SETFD, 0);
        execve(exe, argv, env);
        _exit(127);
    }
    free(env);
    free(argv);
    close(sv[1]);
    if (child < 0) {
        close(sv[0]);
        snprintf(msg, msglen, "fork: %s", strerror(errno));
        return -1;
    }
    uint64_t timeout = g ? g->conf->upgrade_timeout_ms : 10000;
    uint64_t deadline = time_mono_ms() + timeout;
    struct timeval tv = {(time_t)(timeout / 1000), (suseconds_t)(timeout % 1000) * 1000};
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct out *o = malloc(sizeof(*o));
    long newpid = 0;
    int ok = 0;
    if (!o) {
        snprintf(why, sizeof(why), "out of memory");
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    } else {
        o->fd = sv[0];
        o->len = 0;
        o->err = 0;
        send_all(o, g, admin_fd, stats_fd);
        int err = o->err;
        free(o);
        if (err && err != EPIPE && err != ECONNRESET) {
            if (err == EAGAIN || err == EWOULDBLOCK)
                snprintf(why, sizeof(why),
                         "the new process did not take the hand-over within "
                         "upgrade_timeout");
            else
                snprintf(why, sizeof(why), "handing over: %s", strerror(err));
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
        } else {
            /* EPIPE: the child died; its verdict (or status) says why. */
            ok = await_verdict(sv[0], child, deadline, &newpid, why, sizeof(why));
        }
    }
    if (!ok) {
        close(sv[0]);
        upgrade_pidfile_write(); /* in case the new process wrote its own */
        snprintf(msg, msglen, "upgrade to %s failed: %s; still serving (pid %ld)", exe, why,
                 (long)getpid());
        return -1;
    }
    /* Keep our end open until we exit: the new process sees us draining. */
    up.succ_fd = sv[0];
    up.handed_over = true;
    snprintf(msg, msglen,
             "upgraded: new process %ld (%s) serves; this process (%ld) stops accepting and "
             "drains",
             newpid, exe, (long)getpid());
    log_notice("%s", msg);
    return 0;
}
