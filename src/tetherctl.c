/* SPDX-License-Identifier: MIT */
/* tetherctl: sends an admin command (or every line of its standard input) to
 * tether's admin socket and prints the answers; exits 1 when one is an error. */
#include "config.h"

#include <tether/admin.h>
#include <tether/sock.h>
#include <tether/util.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>

#define DEFAULT_SOCKET "/run/tether/admin.sock"

enum { EXIT_OK = 0, EXIT_ANSWER = 1, EXIT_USAGE = 2 };

static void
usage(FILE *f)
{
    fprintf(f, "usage: tetherctl [-s SOCKET] [-t SECONDS] COMMAND...\n"
               "       tetherctl [-s SOCKET] [-t SECONDS] < COMMANDS\n"
               "  -s SOCKET   admin socket: PATH, unix:PATH or HOST:PORT (default\n"
               "              $TETHER_ADMIN_SOCKET, else " DEFAULT_SOCKET ")\n"
               "  -t SECONDS  how long to wait for the answers (default 30)\n"
               "  -v          print the version; -h this help\n"
               "\"tetherctl help\" lists tether's commands. Exit status: 0 ok, 1 an answer\n"
               "was an error, 2 usage or connection failure.\n");
}

/* Append <n> bytes to the heap string <*s> of length <*len>. */
static int
append(char **s, size_t *len, const char *p, size_t n)
{
    char *d = realloc(*s, *len + n + 1);
    if (!d)
        return -1;
    memcpy(d + *len, p, n);
    *len += n;
    d[*len] = '\0';
    *s = d;
    return 0;
}

static int
connect_admin(const char *path, double timeout_s)
{
    struct sock_addr a;
    struct err e = {{0}};
    char text[SOCK_ADDR_STRLEN + 8];
    struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (time_t)timeout_s) * 1e6)};
    /* A path (with a slash, or without a port) is a Unix socket. */
    bool is_path = strncmp(path, "unix:", 5) != 0 && (strchr(path, '/') || !strchr(path, ':'));
    snprintf(text, sizeof(text), "%s%s", is_path ? "unix:" : "", path);
    if (sock_addr_parse(&a, text, 0, &e) < 0) {
        fprintf(stderr, "tetherctl: invalid socket \"%s\": %s\n", path, e.msg);
        return -1;
    }
    int fd = socket(a.u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, &a.u.sa, a.len) < 0) {
        fprintf(stderr, "tetherctl: cannot connect to %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static int
send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Print each answer (text up to its empty line): errors to stderr. */
static int
print_answers(const char *data, size_t len)
{
    int rc = EXIT_OK;
    size_t pos = 0;
    while (pos < len) {
        const char *end = strstr(data + pos, "\n\n");
        size_t n = end ? (size_t)(end - (data + pos)) + 1 : len - pos;
        bool error = strncmp(data + pos, "error: ", 7) == 0;
        fwrite(data + pos, 1, n, error ? stderr : stdout);
        if (error)
            rc = EXIT_ANSWER;
        pos += n + (end ? 1 : 0);
        if (pos < len)
            fputc('\n', stdout); /* keep several answers apart */
    }
    return rc;
}

/* Send <cmds> (newline-ended lines), read every answer, print them. */
static int
run(const char *path, double timeout_s, const char *cmds, size_t clen)
{
    char buf[4096], *answer = NULL;
    size_t alen = 0;
    int fd = connect_admin(path, timeout_s);
    if (fd < 0)
        return EXIT_USAGE;
    /* Send everything and half-close: tether answers each line, then closes. */
    if (send_all(fd, cmds, clen) < 0 || shutdown(fd, SHUT_WR) < 0) {
        fprintf(stderr, "tetherctl: cannot send to %s: %s\n", path, strerror(errno));
        close(fd);
        return EXIT_USAGE;
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ECONNRESET && alen)
            break; /* closed with our input unread (e.g. "too many connections") */
        if (n < 0) {
            fprintf(stderr, "tetherctl: %s\n",
                    errno == EAGAIN || errno == EWOULDBLOCK ? "no complete answer in time"
                                                            : strerror(errno));
            free(answer);
            close(fd);
            return EXIT_USAGE;
        }
        if (n == 0 || append(&answer, &alen, buf, (size_t)n) < 0)
            break;
    }
    close(fd);
    int rc = answer ? print_answers(answer, alen) : EXIT_OK;
    free(answer);
    return rc;
}

int
main(int argc, char **argv)
{
    const char *path = getenv("TETHER_ADMIN_SOCKET");
    double timeout_s = 30;
    char *cmds = NULL, buf[4096];
    size_t clen = 0;
    int opt;
    if (!path || !*path)
        path = DEFAULT_SOCKET;
    sock_resolve_names(true);
    while ((opt = getopt(argc, argv, "+s:t:hv")) != -1) {
        char *end;
        switch (opt) {
        case 's':
            path = optarg;
            break;
        case 't':
            timeout_s = strtod(optarg, &end);
            if (*end || end == optarg || timeout_s <= 0 || timeout_s > 86400) {
                fprintf(stderr, "tetherctl: invalid timeout \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'v':
            printf("tetherctl %s\n", PACKAGE_VERSION);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    for (int i = optind; i < argc; i++)
        if (append(&cmds, &clen, " ", i > optind) < 0 ||
            append(&cmds, &clen, argv[i], strlen(argv[i])) < 0)
            goto fail;
    if (cmds && (strchr(cmds, '\n') || clen > ADMIN_LINE_MAX)) {
        fprintf(stderr, "tetherctl: the command must be one line of at most %d bytes\n",
                ADMIN_LINE_MAX);
        goto fail;
    }
    if (!cmds && isatty(STDIN_FILENO)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    for (size_t n; !cmds && (n = fread(buf, 1, sizeof(buf), stdin)) > 0;)
        if (append(&cmds, &clen, buf, n) < 0)
            goto fail;
    if (!cmds) {
        fprintf(stderr, "tetherctl: no command (give one as arguments or on standard input)\n");
        return EXIT_USAGE;
    }
    if (append(&cmds, &clen, "\n", 1) < 0)
        goto fail;
    int rc = run(path, timeout_s, cmds, clen);
    free(cmds);
    return rc;
fail:
    free(cmds);
    return EXIT_USAGE;
}
