/* SPDX-License-Identifier: MIT */
/* The admin socket: clients on the control loop send newline-ended commands;
 * each runs from the command table (admin_cmd.c) and its answer, ending with an
 * empty line, is written back in order. Changes are logged with the peer. */
#include "config.h"

#include <tether/admin.h>
#include <tether/control.h>
#include <tether/gen.h>
#include <tether/list.h>
#include <tether/log.h>
#include <tether/redis.h>
#include <tether/sock.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define ADMIN_CLIENTS_MAX 32
#define ADMIN_IDLE_S      60.0
#define ADMIN_ARGS_MAX    8
#define ADMIN_OUT_HIGH    (1u << 20) /* stop reading while this much is unsent */

/* One connected client. */
struct admin_client {
    struct list link; /* in adm.clients */
    ev_io io;         /* read and/or write readiness */
    ev_timer idle;    /* closes a silent client so it cannot hold a slot */
    int fd;
    struct admin_peer peer;      /* for the log */
    char in[ADMIN_LINE_MAX + 1]; /* bytes of an unfinished line */
    size_t inlen;
    struct admin_out out; /* answers not yet written */
    size_t sent;          /* bytes of out already written */
    bool eof;             /* the client closed its side */
    bool quit;            /* "quit": read no more commands, close at EOF */
    bool shut;            /* our side is shut down (after quit) */
    bool skip;            /* dropping the rest of an overlong line */
};

static struct {
    bool init;
    int fd;                /* listening socket, -1 when closed */
    ev_io io;              /* accept readiness */
    struct sock_addr addr; /* where fd listens */
    unsigned mode;         /* permissions of the Unix socket file */
    dev_t dev;             /* identity of the socket file we created, so we */
    ino_t ino;             /* never unlink one another process made since */
    struct list clients;
    uint32_t nclients;
    bool keep_file; /* handed over by a binary upgrade: the socket file is not ours */
} adm = {.fd = -1};

/* ---- answers ---- */

static void
out_vprintf(struct admin_out *o, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(o->data ? o->data + o->len : NULL, o->data ? o->cap - o->len : 0, fmt, ap);
    if (n >= 0 && o->len + (size_t)n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 1024;
        while (cap < o->len + (size_t)n + 1)
            cap *= 2;
        char *d = realloc(o->data, cap);
        if (d) {
            o->data = d;
            o->cap = cap;
            vsnprintf(o->data + o->len, o->cap - o->len, fmt, ap2);
        } else {
            n = -1; /* out of memory: the line is lost, the answer stays well-formed */
        }
    }
    if (n > 0)
        o->len += (size_t)n;
    va_end(ap2);
}

void
admin_printf(struct admin_out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out_vprintf(o, fmt, ap);
    va_end(ap);
}

/* "error: ..." line; marks the answer as an error. Returns -1. */
int
admin_error(struct admin_out *o, const char *fmt, ...)
{
    va_list ap;
    o->error = true;
    admin_printf(o, "error: ");
    va_start(ap, fmt);
    out_vprintf(o, fmt, ap);
    va_end(ap);
    admin_printf(o, "\n");
    return -1;
}

void
admin_out_free(struct admin_out *out)
{
    free(out->data);
    memset(out, 0, sizeof(*out));
}

/* Number of words of <cmd> matched by <argv> (all of them for a full match). */
static int
cmd_match(const struct admin_cmd *cmd, int argc, char **argv, int *nwords)
{
    int i;
    for (*nwords = 0; *nwords < 4 && cmd->words[*nwords]; (*nwords)++)
        ;
    for (i = 0; i < *nwords && i < argc; i++)
        if (strcmp(cmd->words[i], "*") != 0 && strcmp(cmd->words[i], argv[i]) != 0)
            break;
    return i;
}

/* No command matched: say what was expected. */
static void
unknown_command(struct admin_ctx *c, int argc, char **argv)
{
    int best = 0, nw, nhint = 0;
    for (size_t i = 0; i < admin_ncmds; i++)
        best = MAX(best, cmd_match(&admin_cmds[i], argc, argv, &nw));
    if (best == 0) {
        admin_printf(c->out, "error: unknown command \"%s\"", argv[0]);
        for (size_t i = 0; i < admin_ncmds; i++)
            if (edit_distance(argv[0], admin_cmds[i].words[0]) <= 2 && !nhint++)
                admin_printf(c->out, "; did you mean \"%s\"?", admin_cmds[i].words[0]);
        admin_printf(c->out, " (\"help\" lists the commands)\n");
    } else {
        admin_printf(c->out, "error: incomplete or unknown command; expected ");
        for (size_t i = 0; i < admin_ncmds; i++)
            if (cmd_match(&admin_cmds[i], argc, argv, &nw) == best)
                admin_printf(c->out, "%s\"%s\"", nhint++ ? " or " : "", admin_cmds[i].usage);
        admin_printf(c->out, "\n");
    }
    c->out->error = true;
}

/* Run <line>; returns true when the connection should close afterwards. */
static bool
exec_line(const char *line, struct admin_out *out, const struct admin_peer *peer)
{
    char buf[ADMIN_LINE_MAX + 1], canon[ADMIN_LINE_MAX + 1];
    char *argv[ADMIN_ARGS_MAX + 1], *save = NULL;
    int argc = 0, nw = 0;
    struct admin_ctx c = {.out = out, .peer = peer, .g = atomic_load(&gen_current)};
    const struct admin_cmd *cmd = NULL;
    const char *first = line + strspn(line, " \t\r\n");
    if (*first == '\0' || *first == '#')
        return false; /* blank lines and comments get no answer, however long */
    snprintf(buf, sizeof(buf), "%s", line);
    for (char *t = strtok_r(buf, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (argc == ADMIN_ARGS_MAX) {
            admin_error(out, "too many words (at most %d)", ADMIN_ARGS_MAX);
            goto done;
        }
        argv[argc++] = t;
    }
    if (argc == 0 || argv[0][0] == '#')
        return false; /* blank lines and comments get no answer */
    for (size_t i = 0; i < admin_ncmds && !cmd; i++)
        if (cmd_match(&admin_cmds[i], argc, argv, &nw) == nw && argc >= nw)
            cmd = &admin_cmds[i];
    if (!cmd) {
        unknown_command(&c, argc, argv);
    } else if (peer->replica && !cmd->change) {
        admin_error(out, "\"%s\" is not accepted from a replica", cmd->usage);
    } else if (argc - nw < cmd->min || argc - nw > cmd->max) {
        admin_error(out, "%s; usage: %s",
                    argc - nw < cmd->min ? "missing value" : "too many arguments", cmd->usage);
    } else if (cmd->fn(&c, argc - nw, argv + nw) == 0 && cmd->change) {
        size_t len = 0;
        for (int i = 0; i < argc; i++)
            len +=
                (size_t)snprintf(canon + len, sizeof(canon) - len, "%s%s", i ? " " : "", argv[i]);
        if (peer->replica && !c.changed)
            log_debug("admin (from %s): %s (no change)", peer->who, canon);
        else
            log_notice("admin (%s%s): %s", peer->replica ? "from " : "", peer->who, canon);
        admin_printf(out, "%s\n", c.note);
        if (!peer->replica && redis_admin_publish(canon) < 0)
            admin_printf(out, "warning: Redis is unreachable: applied here only for now; it will "
                              "be published to the replicas when Redis is back\n");
    }
done:
    if (!c.quit) /* "quit" has no answer: the connection just ends */
        admin_printf(out, "\n");
    return c.quit;
}

void
admin_exec(const char *line, struct admin_out *out, const struct admin_peer *peer)
{
    exec_line(line, out, peer);
}

/* ---- the socket ---- */

static void
client_close(struct admin_client *cl)
{
    ev_io_stop(ctl.loop, &cl->io);
    ev_timer_stop(ctl.loop, &cl->idle);
    close(cl->fd);
    list_remove(&cl->link);
    adm.nclients--;
    admin_out_free(&cl->out);
    free(cl);
}

/* Write what is pending; returns -1 when the client was closed. */
static int
client_flush(struct admin_client *cl)
{
    while (cl->sent < cl->out.len) {
        ssize_t n = write(cl->fd, cl->out.data + cl->sent, cl->out.len - cl->sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            client_close(cl);
            return -1;
        }
        cl->sent += (size_t)n;
    }
    if (cl->sent == cl->out.len) {
        cl->out.len = cl->sent = 0;
        cl->out.error = false;
        if (cl->eof) {
            client_close(cl);
            return -1;
        }
        /* After "quit": shut our side but read until the client's EOF, as
         * closing with unread input would reset the answers still in flight. */
        if (cl->quit && !cl->shut) {
            shutdown(cl->fd, SHUT_WR);
            cl->shut = true;
        }
    }
    /* Read only while the answers drain: a client that never reads cannot make
     * us buffer without bound. */
    int ev = cl->sent < cl->out.len ? EV_WRITE : 0;
    if (!cl->eof && cl->out.len - cl->sent < ADMIN_OUT_HIGH)
        ev |= EV_READ;
    if (ev != (cl->io.events & (EV_READ | EV_WRITE))) {
        ev_io_stop(ctl.loop, &cl->io);
        ev_io_set(&cl->io, cl->fd, ev);
        ev_io_start(ctl.loop, &cl->io);
    }
    return 0;
}

/* Run every complete line in the input buffer (and, at EOF, the last one). */
static void
client_lines(struct admin_client *cl)
{
    size_t start = 0;
    if (cl->skip || cl->quit) {
        char *nl = cl->quit ? NULL : memchr(cl->in, '\n', cl->inlen);
        cl->skip = cl->skip && !nl;
        start = nl ? (size_t)(nl + 1 - cl->in) : cl->inlen;
    }
    for (size_t i = start; i < cl->inlen && !cl->quit; i++) {
        if (cl->in[i] != '\n')
            continue;
        cl->in[i] = '\0';
        cl->quit = exec_line(cl->in + start, &cl->out, &cl->peer);
        start = i + 1;
    }
    if (cl->quit)
        start = cl->inlen;
    memmove(cl->in, cl->in + start, cl->inlen - start);
    cl->inlen -= start;
    if (cl->eof && cl->inlen) {
        cl->in[cl->inlen] = '\0';
        exec_line(cl->in, &cl->out, &cl->peer);
        cl->inlen = 0;
    } else if (cl->inlen == ADMIN_LINE_MAX) {
        /* Answer once, then drop bytes up to the next newline and go on. */
        admin_error(&cl->out, "line too long (at most %d bytes)", ADMIN_LINE_MAX);
        admin_printf(&cl->out, "\n");
        cl->skip = true;
        cl->inlen = 0;
    }
}

static void
client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin_client *cl = container_of(w, struct admin_client, io);
    (void)loop;
    if ((revents & EV_READ) && !cl->eof) {
        ssize_t n = read(cl->fd, cl->in + cl->inlen, ADMIN_LINE_MAX - cl->inlen);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            client_close(cl);
            return;
        }
        if (n == 0)
            cl->eof = true;
        if (n > 0)
            cl->inlen += (size_t)n;
        ev_timer_again(ctl.loop, &cl->idle);
        client_lines(cl);
    }
    client_flush(cl);
}

static void
client_idle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    client_close(container_of(t, struct admin_client, idle));
}

/* "uid 1000 pid 1234" for a Unix peer, its address for TCP. */
static void
peer_describe(int fd, struct admin_peer *p)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    struct sock_addr a;
    char text[SOCK_ADDR_STRLEN];
    if (adm.addr.u.sa.sa_family == AF_UNIX) {
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0)
            snprintf(p->who, sizeof(p->who), "uid %u pid %ld", (unsigned)cr.uid, (long)cr.pid);
        else
            snprintf(p->who, sizeof(p->who), "unknown peer");
        return;
    }
    a.len = sizeof(a.u);
    if (getpeername(fd, &a.u.sa, &a.len) < 0)
        a.len = 0;
    snprintf(p->who, sizeof(p->who), "%s", a.len ? sock_addr_format(&a, text, sizeof(text)) : "?");
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    static const char busy[] = "error: too many admin connections\n\n";
    (void)loop;
    (void)w;
    (void)revents;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(adm.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("admin: accept: %s", strerror(errno));
            return;
        }
        struct admin_client *cl = adm.nclients < ADMIN_CLIENTS_MAX ? calloc(1, sizeof(*cl)) : NULL;
        if (!cl) {
            ssize_t n = write(fd, busy, sizeof(busy) - 1); /* best effort */
            (void)n;
            close(fd);
            continue;
        }
        cl->fd = fd;
        peer_describe(fd, &cl->peer);
        ev_io_init(&cl->io, client_cb, fd, EV_READ);
        ev_io_start(ctl.loop, &cl->io);
        ev_init(&cl->idle, client_idle_cb);
        cl->idle.repeat = ADMIN_IDLE_S;
        ev_timer_again(ctl.loop, &cl->idle);
        list_append(&adm.clients, &cl->link);
        adm.nclients++;
    }
}

/* Close the listening socket; the file goes only if it is still the one we made. */
static void
listener_close(void)
{
    struct stat st;
    if (adm.fd < 0)
        return;
    ev_io_stop(ctl.loop, &adm.io);
    close(adm.fd);
    adm.fd = -1;
    if (adm.addr.u.sa.sa_family == AF_UNIX && !adm.keep_file &&
        stat(adm.addr.u.un.sun_path, &st) == 0 && st.st_dev == adm.dev && st.st_ino == adm.ino)
        unlink(adm.addr.u.un.sun_path);
}

void
admin_sync(struct gen *g)
{
    const struct conf *c = g->conf;
    struct err e = {{0}};
    struct stat st;
    char name[SOCK_ADDR_STRLEN];
    if (!adm.init) {
        list_init(&adm.clients);
        adm.init = true;
    }
    if (!c->admin_enabled) {
        if (adm.fd >= 0)
            log_notice("admin socket closed (no admin block in the configuration)");
        listener_close();
        return;
    }
    bool unix_sock = c->admin_listen.u.sa.sa_family == AF_UNIX;
    if (adm.fd >= 0 && sock_addr_equal(&adm.addr, &c->admin_listen)) {
        if (unix_sock && adm.mode != c->admin_mode &&
            chmod(adm.addr.u.un.sun_path, c->admin_mode) == 0)
            adm.mode = c->admin_mode;
        return;
    }
    /* Open the new socket before closing the old one, so a failure keeps the
     * old one serving. */
    int fd = sock_listen(&c->admin_listen, 64, false, false, c->admin_mode, &e);
    if (fd < 0) {
        log_error("admin socket: %s%s", e.msg, adm.fd >= 0 ? " (keeping the old one)" : "");
        return;
    }
    listener_close();
    adm.fd = fd;
    adm.addr = c->admin_listen;
    adm.mode = c->admin_mode;
    if (unix_sock && stat(adm.addr.u.un.sun_path, &st) == 0) {
        adm.dev = st.st_dev;
        adm.ino = st.st_ino;
    }
    ev_io_init(&adm.io, accept_cb, fd, EV_READ);
    ev_io_start(ctl.loop, &adm.io);
    log_notice("admin socket listening on %s", sock_addr_format(&adm.addr, name, sizeof(name)));
}

void
admin_stop(void)
{
    struct list *pos, *tmp;
    listener_close();
    if (!adm.init)
        return;
    list_for_each_safe(pos, tmp, &adm.clients)
        client_close(container_of(pos, struct admin_client, link));
}

unsigned
admin_nclients(void)
{
    return adm.nclients;
}

int
admin_listen_fd(void)
{
    return adm.fd;
}

void
admin_keep_file(void)
{
    adm.keep_file = true;
}
