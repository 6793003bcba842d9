/* SPDX-License-Identifier: MIT */
/* The configuration model and the directive engine: tables of directives (name,
 * contexts, arity, typed setter, offset, default as text) turn a statement tree
 * (conf_lex.h) into the plain structs below, all allocated in one arena. */
#ifndef TETHER_CONF_H
#define TETHER_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tether/arena.h>
#include <tether/conf_lex.h>
#include <tether/log.h>
#include <tether/session.h>
#include <tether/sock.h>
#include <tether/util.h>

/* Contexts a directive may appear in (bit mask). */
enum conf_ctx {
    CONF_MAIN = 1u << 0,
    CONF_STATS = 1u << 1,
    CONF_ADMIN = 1u << 2,
    CONF_REDIS = 1u << 3,
    CONF_UPSTREAM = 1u << 4,
    CONF_HEALTH = 1u << 5,
    CONF_OUTLIER = 1u << 6,
    CONF_AFFINITY = 1u << 7,
    CONF_SERVER = 1u << 8,
    CONF_ROUTE = 1u << 9,
};

enum access_format {
    ACCESS_JSON = 0,
    ACCESS_COMBINED,
};

enum balance_algo {
    BALANCE_ROUND_ROBIN = 0,
    BALANCE_LEAST_CONN,
    BALANCE_RANDOM_TWO,
    BALANCE_HASH,
    BALANCE_LEAST_SESSIONS,
};

enum affinity_mode {
    AFFINITY_NONE = 0,
    AFFINITY_COOKIE,
    AFFINITY_HEADER,
    AFFINITY_SESSION,
};

/* retry_on conditions (bit mask). */
enum retry_cond {
    RETRY_CONNECT_FAILURE = 1u << 0, /* connect timeout or error */
    RETRY_REFUSED = 1u << 1,         /* connection refused */
    RETRY_RESET = 1u << 2,           /* reset/closed before any response byte */
    RETRY_502 = 1u << 3,
    RETRY_503 = 1u << 4,
    RETRY_504 = 1u << 5,
    RETRY_TIMEOUT = 1u << 6, /* no answer within per_try_timeout */
};

/* A rate-limit key: one or more parts joined (e.g. $remote_addr$route). */
enum key_part_kind {
    KEY_REMOTE_ADDR = 0,
    KEY_HTTP_HEADER, /* $http_NAME */
    KEY_COOKIE,      /* $cookie_NAME */
    KEY_ROUTE,
    KEY_LITERAL,
};

struct key_part {
    uint8_t kind; /* enum key_part_kind */
    char *name;   /* header name (dashes), cookie name or literal text */
    size_t len;   /* length of name */
};

struct key_spec {
    struct key_part *parts;
    uint32_t nparts;
    char *text; /* as written, for logs and metrics */
};

enum on_redis_error {
    ON_REDIS_LOCAL = 0,
    ON_REDIS_ALLOW,
    ON_REDIS_DENY,
};

struct conf_zone {
    char *name;
    struct conf_pos pos;
    struct key_spec key;
    double rate;     /* requests per second */
    uint32_t burst;  /* requests beyond the rate admitted at once */
    bool nodelay;    /* admit the burst at once instead of pacing it */
    bool global;     /* state in Redis, shared by replicas */
    uint16_t status; /* answer when over the limit (429 or 503) */
    uint64_t size;   /* bytes of memory for the local table */
    uint8_t on_redis_error;
    uint32_t index;
};

struct conf_conn_zone {
    char *name;
    struct conf_pos pos;
    struct key_spec key;
    uint64_t size;
    uint32_t index;
};

struct conf_health {
    bool enabled;
    char *path;
    uint64_t interval_ms;
    uint64_t timeout_ms;
    uint32_t rise;
    uint32_t fall;
    uint16_t expect_lo, expect_hi; /* accepted status range */
    char *expect_body;             /* substring the body must contain, or NULL */
    char *host;                    /* Host header, or NULL (server address) */
    uint32_t port;                 /* 0: the server's port */
    bool initial_up;               /* state before the first check */
    bool report;                   /* report json: read the pod's load report */
    char *report_status;           /* its member names */
    char *report_active;
    char *report_max;
};

struct conf_outlier {
    bool enabled;
    uint32_t consecutive_errors;
    uint64_t base_ejection_ms;
    uint64_t max_ejection_ms;
    uint32_t max_ejected_pct;
    bool uneject_on_health_pass; /* a passing active check ends an ejection */
};

struct conf_region {
    char *name;
    struct conf_pos pos;
    uint32_t weight;
    uint32_t priority; /* 0 = primary tier */
};

struct conf_server {
    char *name;
    struct conf_pos pos;
    struct sock_addr addr;
    char addr_text[SOCK_ADDR_STRLEN];
    char *region_name; /* NULL: the upstream's default region */
    int32_t region;    /* index in conf_upstream.regions */
    uint32_t weight;   /* 1..1000 */
    bool tls;          /* TLS to the pod */
    bool verify;       /* verify the pod's certificate */
    char *ca_file;
    char *sni;
    uint32_t max_conns;    /* 0 = unlimited */
    uint32_t max_sessions; /* 0: the upstream's max_sessions */
};

/* A DNS name whose addresses are servers of an upstream (discover). */
struct conf_discover {
    char *name;
    struct conf_pos pos;
    uint32_t port;     /* A/AAAA: the servers' port */
    bool srv;          /* SRV records (port and weight from DNS) */
    char *region_name; /* NULL: the upstream's default region */
    int32_t region;    /* index in conf_upstream.regions */
    uint32_t weight;   /* A/AAAA: each server's weight */
};

struct conf_upstream {
    char *name;
    struct conf_pos pos;
    uint8_t balance;          /* enum balance_algo */
    struct key_spec hash_key; /* for balance hash */
    struct conf_region *regions;
    uint32_t nregions;
    struct conf_server *servers;
    uint32_t nservers;
    char *affinity_cookie; /* the affinity cookie's name here, or NULL: the affinity block's */
    uint32_t keepalive;    /* idle pooled connections per worker */
    uint64_t keepalive_timeout_ms;
    uint32_t keepalive_burst; /* more idle connections kept briefly after a burst */
    uint64_t keepalive_burst_timeout_ms;
    uint64_t connect_timeout_ms;
    uint32_t retries;
    uint32_t retry_on; /* enum retry_cond mask */
    uint32_t retry_budget_pct;
    uint64_t per_try_timeout_ms; /* 0: off */
    struct conf_pos per_try_pos; /* where per_try_timeout was set */
    uint32_t panic_threshold_pct;
    double overprovisioning; /* 0: strict tiers (the next tier only when this one cannot) */
    uint64_t slow_start_ms;
    uint32_t max_sessions;        /* per server, 0 = unlimited (a pod's report overrides) */
    uint32_t degraded_weight_pct; /* weight share of a pod reporting "degraded" */
    uint16_t shed_status;         /* answer when every server is full (503 or 429) */
    uint32_t shed_retry_after_s;  /* its Retry-After */
    uint32_t hash_balance_pct;    /* hash_balance_factor, 0 = off (bounded-load hashing) */
    struct conf_health health;
    struct conf_outlier outlier;
    uint32_t index;
    struct conf_discover *discovers;
    uint32_t ndiscovers;
    struct sock_addr *resolvers; /* resolver ADDR...; none: /etc/resolv.conf */
    uint32_t nresolvers;
    uint64_t resolver_valid_ms;   /* re-resolve at least this often (TTL clamp) */
    uint64_t resolver_timeout_ms; /* per query attempt */
    uint32_t max_servers;         /* servers of the membership at most */
    uint64_t leave_timeout_ms;    /* longest drain of a leaving server */
};

struct conf_cert {
    char *cert_file;
    char *key_file;
    struct conf_pos pos;
};

struct conf_listen {
    struct sock_addr addr;
    char text[SOCK_ADDR_STRLEN];
    struct conf_pos pos;
    bool tls;
    bool proxy_protocol;
    bool http2; /* "http2": HTTP/2 by ALPN on this tls listen even with "http2 off" */
    bool h2c;   /* "h2c": cleartext HTTP/2 with prior knowledge only */
    int backlog;
};

/* A name that refers to something declared elsewhere, resolved by conf_check(). */
struct conf_ref {
    char *name;
    struct conf_pos pos;
};

struct conf_route {
    char *path;
    size_t path_len;
    bool exact;
    struct conf_pos pos;
    struct conf_ref upstream_ref;
    int32_t upstream; /* index in conf.upstreams */
    uint8_t affinity; /* enum affinity_mode */
    bool learn;
    uint64_t timeout_ms;
    uint64_t per_try_timeout_ms; /* in effect (the route's, else the upstream's), 0 off */
    bool per_try_set;            /* per_try_timeout given in the route */
    struct conf_pos per_try_pos;
    uint64_t websocket_timeout_ms;
    uint64_t websocket_fin_timeout_ms; /* idle limit once one side has closed */
    uint64_t max_body_bytes;
    bool max_body_set;
    struct conf_ref *zone_refs; /* limit_req names */
    uint32_t nzone_refs;
    bool zones_set; /* limit_req given in the route (replaces the server's) */
    int32_t *zones; /* resolved: indices in conf.zones */
    uint32_t nzones;
    char *label; /* "=/session" or "/tools/" for metrics and logs */
};

struct conf_vserver {
    struct conf_pos pos;
    struct conf_listen *listens;
    uint32_t nlistens;
    struct conf_cert *certs;
    uint32_t ncerts;
    char *ticket_key_file;
    char *ciphers;      /* TLS 1.2 cipher list */
    char *ciphersuites; /* TLS 1.3 suites */
    struct conf_route *routes;
    uint32_t nroutes;
    struct conf_ref *zone_refs; /* limit_req names */
    uint32_t nzone_refs;
    uint32_t limit_conn;           /* per client address, 0 = off */
    struct conf_ref conn_zone_ref; /* limit_conn ZONE N */
    int32_t conn_zone;             /* resolved index, -1 none */
    uint32_t conn_zone_limit;
    uint64_t max_body_bytes;
    uint64_t client_header_timeout_ms;
    uint64_t client_body_timeout_ms;
    uint64_t keepalive_timeout_ms;
    uint32_t keepalive_requests;
    bool merge_slashes; /* route matching: "//" counts as "/" */
    uint64_t max_head_bytes;
    uint32_t max_headers;
    struct sock_cidr *real_ip_from;
    uint32_t nreal_ip_from;
    char *real_ip_header;
    /* HTTP/2 from clients (h2.h) */
    bool http2; /* offer h2 by ALPN on tls listens (default on) */
    uint32_t h2_max_streams;
    uint64_t h2_max_header_list;
    uint64_t h2_stream_window;
    uint64_t h2_conn_window;
    uint64_t h2_idle_timeout_ms;
    uint64_t h2_header_timeout_ms;
    uint64_t h2_send_timeout_ms;
    uint32_t h2_max_resets;   /* RST_STREAM burst */
    uint32_t h2_reset_rate;   /* RST_STREAM tokens per second */
    uint32_t h2_max_control;  /* control frame burst */
    uint32_t h2_control_rate; /* control frame tokens per second */
    uint32_t h2_max_continuations;
};

struct conf_affinity {
    char *cookie_name;
    uint64_t cookie_max_age_ms;
    char *secret_file;
    struct conf_pos secret_pos; /* where secret_file was given */
    char *samesite;             /* NULL, "Lax", "Strict" or "None" */
    char *header_name;
    char *learn_header;
    char *learn_json;
    char *learn_cookie;   /* learn from the response's Set-Cookie of this name */
    char *session_cookie; /* request cookie carrying a session id, or NULL */
    struct path_pattern *paths;
    uint32_t npaths;
    uint64_t ttl_ms;
    uint64_t table_size;
};

/* Most "server" endpoints or sentinels in one redis block. */
#define REDIS_EP_MAX 8

/* One Redis endpoint (a server or a sentinel). */
struct conf_redis_ep {
    struct sock_addr addr;
    char text[SOCK_ADDR_STRLEN];
};

struct conf_redis {
    bool enabled;
    struct sock_addr addr; /* the first server (its only one without HA) */
    char addr_text[SOCK_ADDR_STRLEN];
    struct conf_redis_ep servers[REDIS_EP_MAX]; /* "server", in order */
    uint32_t nservers;
    struct conf_redis_ep sentinels[REDIS_EP_MAX]; /* "sentinel ADDR...", or none */
    uint32_t nsentinels;
    char *master; /* the sentinels' master name */
    char *prefix;
    uint64_t timeout_ms;
    char *user;          /* ACL user (AUTH user password), or NULL */
    char *password;      /* inline, or read from password_file at load; never logged */
    char *password_file; /* path the password was read from, or NULL */
    uint32_t db;
    uint32_t queue_size;        /* writes kept while no primary is known */
    uint64_t check_interval_ms; /* ROLE check of the primary */
};

struct conf {
    struct arena arena;   /* owns everything below */
    struct conf_doc *doc; /* parsed source, kept: every conf_pos.file points into it */
    char *path;           /* file loaded */
    char *text;           /* the effective configuration (conf_dump.c), NUL-terminated */
    size_t text_len;
    char hash[65];    /* SHA-256 of text, lowercase hex */
    uint32_t workers; /* 0 = number of CPUs */
    uint8_t error_level;
    bool error_json;  /* error_log ... json: JSON lines */
    char *error_log;  /* "stderr", "stdout", "syslog:...", or a path */
    char *access_log; /* as error_log, or NULL when off */
    uint8_t access_format;
    uint64_t access_flush_ms;
    uint64_t shutdown_timeout_ms;
    char *pidfile;
    uint64_t upgrade_timeout_ms; /* binary upgrade: how long the new process may take */
    uint32_t max_connections;
    uint64_t bufsize;
    struct sock_addr stats_listen;
    struct conf_pos stats_listen_pos;
    bool stats_enabled;
    struct sock_addr admin_listen;
    struct conf_pos admin_listen_pos;
    bool admin_enabled;
    unsigned admin_mode;
    struct conf_redis redis;
    struct conf_affinity affinity;
    bool affinity_set;
    struct conf_zone *zones;
    uint32_t nzones;
    struct conf_conn_zone *conn_zones;
    uint32_t nconn_zones;
    struct conf_upstream *upstreams;
    uint32_t nupstreams;
    struct conf_vserver *vservers;
    uint32_t nvservers;
    struct sock_cidr *real_ip_from; /* main-level defaults for server blocks */
    uint32_t nreal_ip_from;
};

/* Load and check <path>; NULL with <e> = "file:line:col: message" on any error. */
struct conf *conf_load(const char *path, struct err *e);
/* Same from text in memory (tests, fuzzing). */
struct conf *conf_parse_text(const char *text, size_t len, const char *name, struct err *e);
void conf_free(struct conf *c);

/* The statement tree of <doc> written out as config text: includes expanded,
 * each run of statements from one file under "# configuration file PATH".
 * malloc'd (NUL-terminated, length in <len>), NULL when out of memory. */
char *conf_doc_text(const struct conf_doc *doc, size_t *len);
/* Fill c->text, c->text_len and c->hash (SHA-256 of the text) from <doc>. */
int conf_effective_build(struct conf *c, const struct conf_doc *doc, struct err *e);

/* Upstream, zone or region index by name, or -1. */
int conf_upstream_find(const struct conf *c, const char *name);
int conf_zone_find(const struct conf *c, const char *name);

/* Every directive: its context, name, usage line and default (NULL: none), for
 * `tether -D` and the test that checks the documentation against the tables. */
void conf_dump_directives(void (*emit)(void *ctx, const char *ctxname, const char *name,
                                       const char *usage, const char *dflt),
                          void *ctx);

#endif
