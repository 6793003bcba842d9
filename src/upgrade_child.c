/* SPDX-License-Identifier: MIT */
/* Binary upgrade, the new side: take the sockets and state the old process
 * hands over, say "ok" once serving; and the one-instance-per-config lock. */
#include "config.h"

#include <tether/affinity.h>
#include <tether/conf.h>
#include <tether/log.h>
#include <tether/membership.h>
#include <tether/session.h>
#include <tether/session_store.h>
#include <tether/sock.h>
#include <tether/upgrade.h>
#include <tether/upstream.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/time.h>

static struct {
    int fd;        /* hand-over socket, -1 when not started by an upgrade */
    bool serving;  /* "ok" sent */
    bool admin;    /* the admin socket came with the upgrade */
    char *state;   /* runtime-state lines (heap) */
    char *pidfile; /* path of the pid file we hold the lock of (heap) */
    size_t len, cap;
    bool truncated; /* the state did not all fit: the rest was dropped */
} child = {.fd = -1};

bool
upgrade_is_child(void)
{
    return child.fd >= 0 && !child.serving;
}

static int
state_add(const char *p, size_t n)
{
    if (child.len + n > UPGRADE_STATE_MAX)
        return -1;
    if (child.len + n + 1 > child.cap) {
        size_t cap = child.cap ? child.cap : 65536;
        while (cap < child.len + n + 1)
            cap *= 2;
        char *d = realloc(child.state, cap);
        if (!d)
            return -1;
        child.state = d;
        child.cap = cap;
    }
    memcpy(child.state + child.len, p, n);
    child.len += n;
    child.state[child.len] = '\0';
    return 0;
}

/* One "fd KIND" message: adopt the socket or keep the lock. */
static int
take_fd(const char *kind, int fd, struct err *e)
{
    if (strcmp(kind, "lock") == 0) {
        if (upgrade_lock_fd >= 0)
            close(upgrade_lock_fd);
        upgrade_lock_fd = fd;
        return 0;
    }
    if (strcmp(kind, "listen") != 0 && strcmp(kind, "admin") != 0 && strcmp(kind, "stats") != 0) {
        close(fd);
        return err_set(e, "upgrade: unknown socket kind \"%s\" from the old process", kind);
    }
    if (sock_adopt(fd) < 0) {
        close(fd);
        return err_set(e, "upgrade: the old process handed over an unusable %s socket", kind);
    }
    child.admin = child.admin || strcmp(kind, "admin") == 0;
    return 0;
}

int
upgrade_child_recv(struct err *e)
{
    const char *v = getenv(UPGRADE_ENV);
    char *end;
    if (!v)
        return 0;
    long fd = strtol(v, &end, 10);
    unsetenv(UPGRADE_ENV);
    if (*end || fd < 3 || fd > 1 << 20)
        return err_set(e, "bad %s in the environment", UPGRADE_ENV);
    child.fd = (int)fd;
    fcntl(child.fd, F_SETFD, FD_CLOEXEC);
    struct timeval tv = {30, 0};
    setsockopt(child.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char *buf = malloc(UPGRADE_MSG_MAX + 1);
    if (!buf)
        return err_set(e, "out of memory");
    bool first = true;
    for (;;) {
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int))];
        } cm;
        struct iovec iov = {buf, UPGRADE_MSG_MAX};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
        ssize_t n = recvmsg(child.fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err_set(e, "upgrade: hand-over from the old process ended early: %s",
                    n < 0 ? strerror(errno) : "connection closed");
            goto fail;
        }
        int rfd = -1;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&rfd, CMSG_DATA(c), sizeof(int));
        buf[n] = '\0';
        if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || buf[n - 1] != '\n') {
            if (rfd >= 0)
                close(rfd);
            err_set(e, "upgrade: malformed hand-over message");
            goto fail;
        }
        if (first) {
            int proto = 0;
            if (rfd >= 0)
                close(rfd);
            if (sscanf(buf, "tether-upgrade %d %ld", &proto, &upgrade_pred_pid) != 2 ||
                proto != UPGRADE_PROTO) {
                err_set(e, "upgrade: the old process speaks another hand-over protocol");
                goto fail;
            }
            first = false;
            continue;
        }
        if (strncmp(buf, "fd ", 3) == 0) {
            buf[n - 1] = '\0';
            if (rfd < 0) {
                err_set(e, "upgrade: socket \"%s\" missing from its message", buf + 3);
                goto fail;
            }
            if (take_fd(buf + 3, rfd, e) < 0)
                goto fail;
            continue;
        }
        if (rfd >= 0)
            close(rfd);
        bool done = n >= 4 && strcmp(buf + n - 4, "end\n") == 0 && (n == 4 || buf[n - 5] == '\n');
        if (!child.truncated && state_add(buf, (size_t)(done ? n - 4 : n)) < 0) {
            /* Serving matters more than the state: keep what fits (whole
             * messages hold whole lines) and read on to the end. */
            child.truncated = true;
            fprintf(stderr,
                    "tether: upgrade: runtime state beyond %u MiB or out of memory: the "
                    "rest is not taken over\n",
                    UPGRADE_STATE_MAX >> 20);
        }
        if (done)
            break;
    }
    free(buf);
    return 1;
fail:
    free(buf);
    return -1;
}

void
upgrade_child_fail(const char *why)
{
    char line[600];
    if (child.fd < 0 || child.serving)
        return;
    int n = snprintf(line, sizeof(line), "error %s\n", why);
    if (n > 0 && send(child.fd, line, MIN((size_t)n, sizeof(line) - 1), MSG_NOSIGNAL) < 0)
        return;
}

/* One state line; unknown or malformed lines are skipped (a newer or older
 * version may say more). */
static size_t
apply_line(char *l, struct session_table *t, uint64_t now)
{
    int w, n = 0;
    unsigned adminst, health, unchecked;
    unsigned long long ej, key, sid, exp;
    if (sscanf(l, "srv %d %u %u %llu %n", &w, &adminst, &health, &ej, &n) == 4 && n > 0) {
        struct server_rt *rt = server_rt_find(l + n);
        if (!rt)
            return 0;
        atomic_store(&rt->weight_admin, w < 0 ? -1 : w);
        if (adminst <= SRV_MAINT)
            atomic_store(&rt->admin, (uint8_t)adminst);
        if (health <= HEALTH_DOWN) {
            atomic_store(&rt->health, (uint8_t)health);
            atomic_store(&rt->hc_unchecked, false); /* judged already by the old process */
        }
        atomic_store(&rt->ejected_until_ms, (uint64_t)ej);
        return 0;
    }
    if (sscanf(l, "since %llu %u %n", &ej, &unchecked, &n) == 2 && n > 0) {
        struct server_rt *rt = server_rt_find(l + n);
        if (rt) {
            atomic_store(&rt->usable_since_ms, (uint64_t)ej);
            atomic_store(&rt->hc_unchecked, unchecked == 1); /* after its "srv" line */
        }
        return 0;
    }
    if (sscanf(l, "reg %d %n", &w, &n) == 1 && n > 0) {
        struct region_rt *rt = region_rt_get(l + n);
        if (rt) {
            atomic_store(&rt->weight_admin, w < 0 ? -1 : w);
            region_rt_unref(rt);
        }
        return 0;
    }
    if (t && sscanf(l, "sess %llx %llx %llu =%n", &key, &sid, &exp, &n) == 3 && n > 0 &&
        exp > now) {
        size_t len = strlen(l + n);
        return session_table_insert(t, key, len ? l + n : NULL, len, sid, exp) == 0;
    }
    return 0;
}

size_t
upgrade_child_apply(void)
{
    struct session_table *t = session_store_table();
    uint64_t now = time_mono_ms();
    size_t nsess = 0;
    char *save = NULL;
    if (!child.state)
        return 0;
    /* The roster first, published once, so the other lines find every
     * server's runtime state. */
    uint32_t ndyn = 0, bad = 0;
    for (char *l = child.state, *end; l && *l; l = end ? end + 1 : NULL) {
        end = strchr(l, '\n');
        if (strncmp(l, "dyn ", 4) != 0)
            continue;
        if (end)
            *end = '\0';
        if (membership_state_in(l) < 0)
            bad++;
        else
            ndyn++;
        if (end)
            *end = '\n';
    }
    if (bad)
        log_warn("upgrade: %u malformed roster line(s) skipped", bad);
    if (ndyn) {
        membership_state_done();
        log_notice("upgrade: %u discovered, added or deleted server(s) taken over", ndyn);
    }
    for (char *l = strtok_r(child.state, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        nsess += apply_line(l, t, now);
    free(child.state);
    child.state = NULL;
    child.len = child.cap = 0;
    return nsess;
}

void
upgrade_child_ready(void)
{
    char line[64];
    if (child.fd < 0 || child.serving)
        return;
    uint32_t left = sock_adopted_close();
    if (left)
        log_notice("upgrade: %u inherited socket(s) no longer configured were closed", left);
    upgrade_pidfile_write();
    /* systemd follows the new main process (NotifyAccess=all). */
    snprintf(line, sizeof(line), "MAINPID=%ld\nREADY=1", (long)getpid());
    upgrade_notify(line);
    int n = snprintf(line, sizeof(line), "ok %ld\n", (long)getpid());
    if (send(child.fd, line, (size_t)n, MSG_NOSIGNAL) < 0)
        log_warn("upgrade: the old process is gone: %s", strerror(errno));
    child.serving = true;
    log_notice("upgrade: took over from pid %ld, which now drains", upgrade_pred_pid);
    /* Kept open: its end closes when the old process exits, which lets a
     * later upgrade know whether it still drains. */
    upgrade_pred_fd = child.fd;
}

/* ---- one instance per config ---- */

void
upgrade_pidfile_write(void)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (upgrade_lock_fd < 0)
        return;
    if (ftruncate(upgrade_lock_fd, 0) < 0 || pwrite(upgrade_lock_fd, text, (size_t)n, 0) != n)
        log_warn("pid file: %s", strerror(errno));
}

/* Pid of a tether answering on the admin socket <a>: >0, 0 when something
 * answers without saying, -1 when nothing listens. */
static long
admin_probe(const struct sock_addr *a)
{
    char buf[4096];
    size_t len = 0;
    struct timeval tv = {2, 0};
    int fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, &a->u.sa, a->len) < 0) {
        close(fd);
        return -1;
    }
    long pid = 0;
    if (send(fd, "show info\nquit\n", 15, MSG_NOSIGNAL) == 15) {
        ssize_t n;
        while (len < sizeof(buf) - 1 && (n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
            len += (size_t)n;
        buf[len] = '\0';
        const char *p = strstr(buf, "\npid: ");
        if (p)
            pid = strtol(p + 6, NULL, 10);
    }
    close(fd);
    return pid;
}

int
upgrade_instance_lock(const struct conf *c, struct err *e)
{
    char text[32] = "";
    if (upgrade_lock_fd >= 0) {
        /* Inherited from the process we replace: ours already. */
        child.pidfile = c->pidfile ? strdup(c->pidfile) : NULL;
        return 0;
    }
    if (c->pidfile) {
        int fd = open(c->pidfile, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return err_set(e, "cannot open pid file \"%s\": %s", c->pidfile, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int saved = errno;
            ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
            close(fd);
            text[n > 0 ? n : 0] = '\0';
            if (saved != EWOULDBLOCK)
                return err_set(e, "cannot lock pid file \"%s\": %s", c->pidfile, strerror(saved));
            return err_set(e,
                           "another tether (pid %ld) is running with pid file \"%s\"; stop it "
                           "first, or replace it with \"tetherctl upgrade\"",
                           strtol(text, NULL, 10), c->pidfile);
        }
        upgrade_lock_fd = fd;
        free(child.pidfile);
        child.pidfile = strdup(c->pidfile);
    }
    if (c->admin_enabled && !child.admin) {
        long pid = admin_probe(&c->admin_listen);
        if (pid >= 0) {
            char name[SOCK_ADDR_STRLEN];
            if (upgrade_lock_fd >= 0) {
                close(upgrade_lock_fd);
                upgrade_lock_fd = -1;
            }
            sock_addr_format(&c->admin_listen, name, sizeof(name));
            if (pid > 0)
                return err_set(e,
                               "another tether (pid %ld) answers on the admin socket %s; stop it "
                               "first, or replace it with \"tetherctl upgrade\"",
                               pid, name);
            return err_set(e, "another process answers on the admin socket %s", name);
        }
    }
    upgrade_pidfile_write();
    return 0;
}

void
upgrade_instance_unlock(void)
{
    if (upgrade_lock_fd < 0)
        return;
    /* The file goes unless a new process took it over, or we are a new
     * process that never served (the old one still owns it). */
    if (child.pidfile && !upgrade_handed_over() && !upgrade_is_child())
        unlink(child.pidfile);
    close(upgrade_lock_fd);
    upgrade_lock_fd = -1;
    free(child.pidfile);
    child.pidfile = NULL;
}
