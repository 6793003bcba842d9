/* SPDX-License-Identifier: MIT */
/* The live status page: one self-contained HTML document (inline CSS and JS,
 * nothing external) that polls /stats and renders upstreams -> regions ->
 * servers, and the short window of traffic it shows (request rate, error rate,
 * p95 over the last RECENT_SECONDS), sampled once a second. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <tether/control.h>
#include <tether/stats_http.h>
#include <tether/upstream.h>

/* ---- the short window ----
 * Rates need two points in time. Sampling here (not in the browser) means the
 * first render already has figures and every viewer sees the same ones. Items
 * are keyed by the server_rt / route_stats pointer: both outlive generations,
 * so a reload keeps the window; a counter that went backwards (an address
 * reused after a free) just yields no figures for one window. */

#define RECENT_N (RECENT_SECONDS + 1)

struct recent_item {
    const void *key;                    /* server_rt or route_stats, never dereferenced */
    uint64_t requests;                  /* finished requests */
    uint64_t errors;                    /* 5xx among them */
    uint64_t bucket[STATS_LAT_BUCKETS]; /* latency, non-cumulative */
};

struct recent_sample {
    uint64_t mono_ms;          /* when taken */
    int64_t requests_all;      /* GS_REQUESTS */
    struct recent_item *items; /* sorted by key; NULL: empty slot */
    uint32_t n;
};

static struct {
    struct recent_sample ring[RECENT_N];
    unsigned next; /* slot the next sample goes to (the oldest when full) */
    ev_timer timer;
    bool running;
} rec;

static int
item_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct recent_item *)a)->key;
    uintptr_t y = (uintptr_t)((const struct recent_item *)b)->key;
    return x < y ? -1 : x > y;
}

static void
item_set(struct recent_item *it, const void *key, const struct snap_traffic *t)
{
    it->key = key;
    it->requests = t->requests;
    it->errors = t->status[5];
    memcpy(it->bucket, t->bucket, sizeof(it->bucket));
}

static void
recent_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct recent_sample *x = &rec.ring[rec.next];
    struct snap s;
    (void)loop;
    (void)w;
    (void)revents;
    if (snap_take(&s) < 0)
        return;
    free(x->items);
    memset(x, 0, sizeof(*x));
    x->items = calloc(s.nsrvs + s.nroutes + 1, sizeof(*x->items));
    if (x->items) {
        x->mono_ms = time_mono_ms();
        x->requests_all = s.gs[GS_REQUESTS];
        for (uint32_t i = 0; i < s.nsrvs; i++)
            item_set(&x->items[x->n++], s.srvs[i].s->rt, &s.srvs[i].t);
        for (uint32_t i = 0; i < s.nroutes; i++)
            item_set(&x->items[x->n++], s.routes[i].key, &s.routes[i].t);
        qsort(x->items, x->n, sizeof(*x->items), item_cmp);
        rec.next = (rec.next + 1) % RECENT_N;
    }
    snap_release(&s);
}

void
recent_start(void)
{
    if (rec.running)
        return;
    ev_timer_init(&rec.timer, recent_tick, 0.0, 1.0);
    ev_timer_start(ctl.loop, &rec.timer);
    rec.running = true;
}

void
recent_stop(void)
{
    if (rec.running)
        ev_timer_stop(ctl.loop, &rec.timer);
    for (unsigned i = 0; i < RECENT_N; i++)
        free(rec.ring[i].items);
    memset(&rec, 0, sizeof(rec));
}

/* The oldest sample at least half a second old (the window's start), or NULL. */
static const struct recent_sample *
recent_oldest(double *seconds)
{
    uint64_t now = time_mono_ms();
    for (unsigned i = 0; i < RECENT_N; i++) {
        const struct recent_sample *x = &rec.ring[(rec.next + i) % RECENT_N];
        if (x->items && now >= x->mono_ms + 500) {
            *seconds = (double)(now - x->mono_ms) / 1e3;
            return x;
        }
    }
    return NULL;
}

bool
recent_traffic(const void *key, const struct snap_traffic *now, struct snap_traffic *d,
               double *seconds)
{
    const struct recent_sample *x = recent_oldest(seconds);
    struct recent_item k = {.key = key};
    const struct recent_item *it = x ? bsearch(&k, x->items, x->n, sizeof(k), item_cmp) : NULL;
    if (!it || now->requests < it->requests || now->status[5] < it->errors)
        return false;
    memset(d, 0, sizeof(*d));
    d->requests = now->requests - it->requests;
    d->status[5] = now->status[5] - it->errors;
    for (int b = 0; b < STATS_LAT_BUCKETS; b++) {
        if (now->bucket[b] < it->bucket[b])
            return false;
        d->bucket[b] = now->bucket[b] - it->bucket[b];
        d->count += d->bucket[b];
    }
    return true;
}

bool
recent_requests(int64_t now, int64_t *delta, double *seconds)
{
    const struct recent_sample *x = recent_oldest(seconds);
    if (!x || now < x->requests_all)
        return false;
    *delta = now - x->requests_all;
    return true;
}

/* ---- the page ----
 * Aggregates (regions, totals) and p95 are computed in the browser from the
 * window's counts and latency buckets. Names are inserted with textContent
 * only: a config name can never become markup. */
static const char *const page[] = {
    "<!doctype html>\n",
    "<html lang='en'>\n",
    "<head>\n",
    "<meta charset='utf-8'>\n",
    "<meta name='viewport' content='width=device-width, initial-scale=1'>\n",
    "<title>tether status</title>\n",
    "<style>\n",
    ":root { --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #6b7384; --line: #e3e6ec;\n",
    "  --ok: #1f8a4c; --warn: #b7791f; --bad: #c53030; --off: #718096; --accent: #2b6cb0; }\n",
    "* { box-sizing: border-box; }\n",
    "body { margin: 0; font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;\n",
    "  background: var(--bg); color: var(--ink); }\n",
    "header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px;\n",
    "  background: #1d2330; color: #fff; flex-wrap: wrap; }\n",
    "header h1 { margin: 0; font-size: 20px; letter-spacing: .5px; }\n",
    "header .meta { color: #c3c9d6; }\n",
    "header .live { margin-left: auto; }\n",
    "main { padding: 16px 24px 32px; }\n",
    ".cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: "
    "12px;\n",
    "  margin-bottom: 20px; }\n",
    ".card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: "
    "10px 14px; }\n",
    ".card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: "
    ".4px; }\n",
    ".card .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }\n",
    "section.box { background: var(--card); border: 1px solid var(--line); border-radius: 8px;\n",
    "  margin-bottom: 20px; overflow-x: auto; }\n",
    "section.box h2 { margin: 0; padding: 10px 14px; font-size: 16px; border-bottom: 1px solid "
    "var(--line); }\n",
    "section.box h2 .muted { font-weight: 400; }\n",
    "table { border-collapse: collapse; width: 100%; }\n",
    "th, td { padding: 6px 10px; text-align: right; white-space: nowrap; font-variant-numeric: "
    "tabular-nums; }\n",
    "th { color: var(--muted); font-weight: 500; font-size: 12px; border-bottom: 1px solid "
    "var(--line); }\n",
    "th:first-child, td:first-child, th.l, td.l { text-align: left; }\n",
    "tr.region td { background: #eef2f8; font-weight: 600; border-top: 1px solid var(--line); }\n",
    "tr.server td:first-child { padding-left: 28px; }\n",
    "tr.server:hover td { background: #fafbfc; }\n",
    ".muted { color: var(--muted); }\n",
    ".badge { display: inline-block; min-width: 56px; text-align: center; padding: 1px 8px; "
    "border-radius: 10px;\n",
    "  font-size: 12px; font-weight: 600; color: #fff; background: var(--off); }\n",
    ".ready, .up, .live-ok { background: var(--ok); }\n",
    ".drain, .leaving, .ejected { background: var(--warn); }\n",
    ".maint { background: var(--off); }\n",
    ".down, .panic, .live-bad { background: var(--bad); }\n",
    ".bar { display: inline-block; width: 60px; height: 8px; background: #e2e8f0; border-radius: "
    "4px;\n",
    "  vertical-align: middle; margin-left: 6px; overflow: hidden; }\n",
    ".bar i { display: block; height: 100%; background: var(--ok); }\n",
    ".err { color: var(--bad); font-weight: 600; }\n",
    "footer { padding: 0 24px 24px; color: var(--muted); font-size: 12px; }\n",
    "footer a { color: var(--accent); }\n",
    "</style>\n",
    "</head>\n",
    "<body>\n",
    "<header>\n",
    "<h1>tether</h1>\n",
    "<span class='meta' id='meta'>loading&hellip;</span>\n",
    "<span class='live badge' id='live'>connecting</span>\n",
    "</header>\n",
    "<main>\n",
    "<noscript><p>This page needs JavaScript; the same data is at <a "
    "href='stats'>/stats</a>.</p></noscript>\n",
    "<div class='cards' id='cards'></div>\n",
    "<div id='upstreams'></div>\n",
    "<section class='box'><h2>Routes</h2><table id='routes'></table></section>\n",
    "<section class='box'><h2>Rate-limit zones</h2><table id='zones'></table></section>\n",
    "</main>\n",
    "<footer>Refreshes every 2 s from <a href='stats'>/stats</a>; Prometheus metrics at\n",
    "<a href='metrics'>/metrics</a>. Req/s, errors (5xx %) and p95 cover the last 10 s.</footer>\n",
    "<script>\n",
    "'use strict';\n",
    "const POLL_MS = 2000;\n",
    "let lastOk = 0;\n",
    "\n",
    "function el(tag, cls, text) {\n",
    "  const e = document.createElement(tag);\n",
    "  if (cls) e.className = cls;\n",
    "  if (text !== undefined) e.textContent = text;\n",
    "  return e;\n",
    "}\n",
    "function row(cls, cells) {\n",
    "  const tr = el('tr', cls);\n",
    "  for (const c of cells) {\n",
    "    const td = el('td', c.cls || '');\n",
    "    if (c.node) td.appendChild(c.node); else td.textContent = c.text;\n",
    "    if (c.span) td.colSpan = c.span;\n",
    "    tr.appendChild(td);\n",
    "  }\n",
    "  return tr;\n",
    "}\n",
    "function head(table, names) {\n",
    "  const tr = el('tr');\n",
    "  names.forEach(function (n, i) { tr.appendChild(el('th', i < 1 ? 'l' : '', n)); });\n",
    "  table.appendChild(tr);\n",
    "}\n",
    "function badge(text, cls) { return el('span', 'badge ' + (cls || text), text); }\n",
    "function num(n) { return n >= 1e6 ? (n / 1e6).toFixed(1) + 'M' : n >= 1e4 ? (n / "
    "1e3).toFixed(1) + 'k' : String(n); }\n",
    "function fmtRate(r) { return r === null ? '\\u2013' : r < 10 ? r.toFixed(2) : r.toFixed(1); "
    "}\n",
    "function fmtPct(p) { return p === null ? '\\u2013' : p.toFixed(p < 10 ? 2 : 1) + ' %'; }\n",
    "function fmtLat(us) {\n",
    "  if (us === null) return '\\u2013';\n",
    "  return us >= 1e6 ? (us / 1e6).toFixed(2) + ' s' : (us / 1e3).toFixed(us < 1e4 ? 1 : 0) + ' "
    "ms';\n",
    "}\n",
    "function dur(ms) {\n",
    "  let s = Math.floor(ms / 1000);\n",
    "  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 "
    "/ 60);\n",
    "  s = s % 60;\n",
    "  return d ? d + 'd ' + h + 'h' : h ? h + 'h ' + m + 'm' : m ? m + 'm ' + s + 's' : s + "
    "'s';\n",
    "}\n",
    "\n",
    "/* Quantile from non-cumulative bucket counts, interpolated as tether does. */\n",
    "function quantile(bounds, b, q) {\n",
    "  let total = 0, seen = 0;\n",
    "  for (const c of b) total += c;\n",
    "  if (!total) return null;\n",
    "  const rank = q * total;\n",
    "  for (let i = 0; i < b.length; i++) {\n",
    "    if (b[i] && seen + b[i] >= rank) {\n",
    "      const lo = i ? bounds[i - 1] : 0, hi = i < bounds.length ? bounds[i] : lo * 2;\n",
    "      return lo + (rank - seen) / b[i] * (hi - lo);\n",
    "    }\n",
    "    seen += b[i];\n",
    "  }\n",
    "  return bounds[bounds.length - 1];\n",
    "}\n",
    "\n",
    "/* The last seconds of traffic, as tether reports them: count, 5xx, latency buckets. */\n",
    "function win(t) {\n",
    "  return t.recent ? { n: t.recent.requests, e: t.recent.errors, b: t.recent.buckets.slice(), "
    "s: t.recent.seconds } : null;\n",
    "}\n",
    "function addTo(acc, d) {\n",
    "  if (!d) return acc;\n",
    "  if (!acc) return { n: d.n, e: d.e, b: d.b.slice(), s: d.s };\n",
    "  acc.n += d.n; acc.e += d.e; acc.s = Math.max(acc.s, d.s);\n",
    "  d.b.forEach(function (v, i) { acc.b[i] += v; });\n",
    "  return acc;\n",
    "}\n",
    "function figures(d, bounds) {\n",
    "  if (!d || d.s <= 0) return { rate: null, err: null, p95: null };\n",
    "  return { rate: d.n / d.s, err: d.n ? 100 * d.e / d.n : null, p95: d.n ? quantile(bounds, "
    "d.b, 0.95) : null };\n",
    "}\n",
    "function rateCells(f) {\n",
    "  return [{ text: fmtRate(f.rate) }, { text: fmtPct(f.err), cls: f.err ? 'err' : '' }, { "
    "text: fmtLat(f.p95) }];\n",
    "}\n",
    "\n",
    "function card(k, v) {\n",
    "  const c = el('div', 'card');\n",
    "  c.appendChild(el('div', 'k', k));\n",
    "  c.appendChild(el('div', 'v', v));\n",
    "  return c;\n",
    "}\n",
    "\n",
    "function render(s) {\n",
    "  const bounds = s.latency_bounds_us;\n",
    "  let all = null;\n",
    "\n",
    "  document.getElementById('meta').textContent = 'version ' + s.version + ' \\u00b7 generation "
    "' +\n",
    "    s.generation + ' \\u00b7 ' + s.workers + ' workers \\u00b7 up ' + dur(s.time_ms - "
    "s.start_ms) +\n",
    "    ' \\u00b7 reloads ' + s.reloads.ok + ' ok / ' + s.reloads.failed + ' failed';\n",
    "\n",
    "  const ups = document.createDocumentFragment();\n",
    "  for (const u of s.upstreams) {\n",
    "    const box = el('section', 'box upstream');\n",
    "    box.setAttribute('data-upstream', u.name);\n",
    "    const h = el('h2', '', u.name + ' ');\n",
    "    h.appendChild(el('span', 'muted', u.balance));\n",
    "    if (u.panic) { h.appendChild(document.createTextNode(' ')); "
    "h.appendChild(badge('panic')); }\n",
    "    box.appendChild(h);\n",
    "    const t = el('table');\n",
    "    head(t, ['Region / server', 'Address', 'State', 'Health', 'Weight', 'Active', 'Tunnels', "
    "'Sessions', 'Req/s', 'Errors', 'p95']);\n",
    "    for (const r of u.regions) {\n",
    "      const rows = [];\n",
    "      let racc = null, ractive = 0, rtun = 0, rsess = 0, rcap = 0;\n",
    "      for (const sv of r.servers) {\n",
    "        const key = u.name + '/' + sv.name, d = win(sv);\n",
    "        racc = addTo(racc, d);\n",
    "        all = addTo(all, d);\n",
    "        ractive += sv.active; rtun += sv.tunnels; rsess += sv.sessions; rcap += "
    "sv.capacity;\n",
    "        const health = sv.health === 'down' ? 'down' : sv.ejected ? 'ejected' : 'up';\n",
    "        const src = sv.source && sv.source !== 'config' ? ' \\u00b7 ' + sv.source : '';\n",
    "        const line = row('server', [{ text: sv.name + src }, { text: sv.addr, cls: 'l "
    "muted' },\n",
    "          { node: badge(sv.state) }, { node: badge(health) }, { text: String(sv.weight) },\n",
    "          { text: String(sv.active) }, { text: String(sv.tunnels) },\n",
    "          { text: sv.sessions + ' / ' + (sv.capacity || '\\u221e') }"
    "].concat(rateCells(figures(d, bounds))));\n",
    "        line.setAttribute('data-server', key);\n",
    "        line.setAttribute('data-state', sv.state);\n",
    "        line.setAttribute('data-health', health);\n",
    "        line.title = 'requests ' + sv.requests + ', 5xx ' + sv.status['5xx'] + ', connect "
    "errors ' +\n",
    "          sv.connect_errors + ', health checks ' + sv.health_checks.ok + ' ok / ' + "
    "sv.health_checks.failed + ' failed';\n",
    "        rows.push(line);\n",
    "      }\n",
    "      const frac = r.servers_total ? r.servers_up / r.servers_total : 0;\n",
    "      const bar = el('span', 'bar'), fill = el('i');\n",
    "      fill.style.width = Math.round(frac * 100) + '%';\n",
    "      if (frac < 0.5) fill.style.background = frac > 0 ? 'var(--warn)' : 'var(--bad)';\n",
    "      bar.appendChild(fill);\n",
    "      const healthy = el('span', '', r.servers_up + '/' + r.servers_total + ' up');\n",
    "      healthy.appendChild(bar);\n",
    "      const rl = row('region', [{ text: r.name },\n",
    "        { text: 'tier ' + r.priority + ' \\u00b7 share ' + (100 * r.share).toFixed(1) + ' %', "
    "cls: 'l' },\n",
    "        { text: '' }, { node: healthy }, { text: String(r.weight) }, { text: String(ractive) "
    "},\n",
    "        { text: String(rtun) }, { text: rsess + ' / ' + (rcap || '\\u221e') }"
    "].concat(rateCells(figures(racc, bounds))));\n",
    "      rl.setAttribute('data-region', u.name + '/' + r.name);\n",
    "      t.appendChild(rl);\n",
    "      rows.forEach(function (x) { t.appendChild(x); });\n",
    "    }\n",
    "    box.appendChild(t);\n",
    "    ups.appendChild(box);\n",
    "  }\n",
    "  document.getElementById('upstreams').replaceChildren(ups);\n",
    "\n",
    "  const fAll = figures(all, bounds);\n",
    "  const reqRate = s.recent && s.recent.seconds > 0 ? s.recent.requests / s.recent.seconds : "
    "null;\n",
    "  const cards = document.getElementById('cards');\n",
    "  cards.replaceChildren(card('Connections', num(s.counters.connections_active)),\n",
    "    card('Tunnels', num(s.counters.tunnels_active)), card('Requests/s', fmtRate(reqRate)),\n",
    "    card('Upstream errors', fmtPct(fAll.err)), card('p95 latency', fmtLat(fAll.p95)),\n",
    "    card('Learned sessions', num(s.sessions.entries)), card('Rate limited', "
    "num(s.counters.rate_limited)),\n",
    "    card('Redis', !s.redis.configured ? 'off' : (s.redis.up ? 'up ' : 'down ') +\n",
    "      (s.redis.primary || 'no primary') + (s.redis.queue ? ', ' + s.redis.queue + ' queued' : "
    "'') +\n",
    "      (s.redis.failovers ? ', ' + s.redis.failovers + ' failover(s)' : '')));\n",
    "\n",
    "  const rt = document.getElementById('routes');\n",
    "  rt.replaceChildren();\n",
    "  head(rt, ['Route', 'Requests', '2xx', '4xx', '5xx', 'Req/s', 'Errors', 'p95']);\n",
    "  for (const r of s.routes) {\n",
    "    rt.appendChild(row('', [{ text: r.route }, { text: num(r.requests) }, { text: "
    "num(r.status['2xx']) },\n",
    "      { text: num(r.status['4xx']) }, { text: num(r.status['5xx']) }]\n",
    "      .concat(rateCells(figures(win(r), bounds)))));\n",
    "  }\n",
    "  const zt = document.getElementById('zones');\n",
    "  zt.replaceChildren();\n",
    "  head(zt, ['Zone', 'Rate', 'Burst', 'Allowed', 'Limited', 'Delayed', 'Keys']);\n",
    "  for (const z of s.rate_limit_zones)\n",
    "    zt.appendChild(row('', [{ text: z.zone + (z.global ? ' (global)' : '') }, { text: z.rate "
    ">= 1 ? +z.rate.toFixed(2) + ' r/s' : +(z.rate * 60).toFixed(2) + ' r/m' },\n",
    "      { text: String(z.burst) }, { text: num(z.allowed) }, { text: num(z.limited) },\n",
    "      { text: num(z.delayed) }, { text: num(z.keys) }]));\n",
    "}\n",
    "\n",
    "function live(ok, text) {\n",
    "  const b = document.getElementById('live');\n",
    "  b.className = 'live badge ' + (ok ? 'live-ok' : 'live-bad');\n",
    "  b.textContent = text;\n",
    "}\n",
    "\n",
    "async function poll() {\n",
    "  try {\n",
    "    const r = await fetch('stats', { cache: 'no-store' });\n",
    "    if (!r.ok) throw new Error('HTTP ' + r.status);\n",
    "    render(await r.json());\n",
    "    lastOk = Date.now();\n",
    "    live(true, 'live');\n",
    "  } catch (e) {\n",
    "    live(false, lastOk ? 'stale ' + dur(Date.now() - lastOk) : 'unreachable');\n",
    "  }\n",
    "  setTimeout(poll, POLL_MS);\n",
    "}\n",
    "poll();\n",
    "</script>\n",
    "</body>\n",
    "</html>\n",
};

void
status_page_write(struct strbuf *out)
{
    for (size_t i = 0; i < sizeof(page) / sizeof(page[0]); i++)
        strbuf_add(out, page[i], strlen(page[i]));
}
