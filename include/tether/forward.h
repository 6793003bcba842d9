/* SPDX-License-Identifier: MIT */
/* Body streaming both ways with back-pressure. Bodies are forwarded verbatim
 * (chunked framing validated, not re-encoded) from the source buffer straight
 * into writev with the pending rewritten head: no copy of body bytes.
 *
 *   client ibuf: [ ... | body_off ..sent.. | ..validated.. body_end | unscanned ]
 *   upconn ibuf: [ start ..sendable.. resp_out | ..skipped (de-chunked).. resp_scan | ... ]
 */
#ifndef TETHER_FORWARD_H
#define TETHER_FORWARD_H

#include <tether/proxy-types.h>

enum fwd_result {
    FWD_DONE = 0,   /* everything pending was written */
    FWD_AGAIN = 1,  /* the socket would block: write watcher armed */
    FWD_ERROR = -1, /* the peer is gone */
};

/* Validate request body bytes that arrived; 0, -1 bad framing (400), -2 body
 * larger than the route allows (413). */
int fwd_req_scan(struct request *req);
/* Write the head for the pod and validated body bytes. */
int fwd_req_send(struct request *req);
/* Give back client-buffer space taken by body bytes already sent (unless they
 * must be kept to replay the request on another server). */
void fwd_req_reclaim(struct request *req);

/* Validate response body bytes that arrived; 0 or -1 (bad framing). Sets
 * req->resp_done when the body ended. */
int fwd_resp_scan(struct request *req);
/* Write the pending head for the client and sendable body bytes. */
int fwd_resp_send(struct request *req);

#endif
