/*
 * loadgen: the load generator and target servers of socksmith's benchmark (bench/run.mjs).
 *
 * One binary, several modes. Every mode talks to 127.0.0.1 only (no address is ever taken from
 * the command line, only ports), is bounded in time (alarm) and exits when its parent dies
 * (PR_SET_PDEATHSIG), so nothing outlives the benchmark. Results are printed as one JSON object
 * per line on stdout; diagnostics go to stderr.
 *
 *   loadgen serve [SECONDS=600]        target servers: a bulk server (first byte 'U' = sink,
 *                                      'D' = endless source) and an echo server; prints
 *                                      {"event":"listening","bulk":P,"echo":P}
 *   loadgen bulk --port P [--proxy X] --dir up|down --streams N --seconds S [--warmup W]
 *                                      bulk throughput over N streams
 *   loadgen handshakes --port P [--proxy X] --workers N --seconds S [--warmup W]
 *                                      closed-loop connect/handshake/1-byte echo/close
 *   loadgen latency --port P [--proxy X] --samples N --size B
 *                                      sequential ping-pong over one tunnel
 *   loadgen idle --port P --proxy X --count N [--hold S]
 *                                      opens N tunnels, prints {"event":"open",...}, keeps them
 *                                      idle until a line (or EOF) on stdin or S seconds, closes
 *   loadgen guard SECONDS CMD ARGS...  execs CMD with the same two limits (used for the proxies)
 *
 * With --proxy the client goes through a SOCKS5 proxy on 127.0.0.1:X (no auth, CONNECT with a
 * 10-byte IPv4 request for 127.0.0.1:P); without it, straight to 127.0.0.1:P. Client modes stop
 * by themselves after --max-seconds (default 120) at the latest.
 *
 * Measurement notes: bulk and handshake counts start after --warmup seconds; upload bytes are
 * counted when written (the few MB in socket buffers are noise next to GB/s × seconds); a
 * handshake counts once its echo byte is back; latency is CLOCK_MONOTONIC around write+read.
 *
 * Everything is single-threaded: epoll with non-blocking sockets for the many-socket modes,
 * blocking sockets for the one-socket latency mode, TCP_NODELAY everywhere, 1 MiB buffers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (1 << 20)       /* bulk read/write size */
#define MAX_EVENTS 256
#define STALL_SECONDS 5.0        /* a handshake not finished by then counts as stalled */
#define OPEN_DEADLINE_SECONDS 60.0 /* idle: all tunnels must be open by then */
#define DEFAULT_LIMIT_SECONDS 120 /* hard lifetime of a client mode unless --max-seconds */

static unsigned char bulk_buf[BUF_SIZE];

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Exit when the parent (bench/run.mjs) dies, and in any case after `seconds`. Both survive exec. */
static void bound_lifetime(unsigned seconds) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) exit(1); /* the parent died before prctl */
    alarm(seconds);
}

/* Many idle tunnels need many descriptors: raise the soft limit to the hard one. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void set_nonblock(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    return a;
}

/* A non-blocking listener on 127.0.0.1 with a kernel-chosen port, returned in *port. */
static int listen_loopback(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback(0);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind: %s", strerror(errno));
    if (listen(fd, 4096) < 0) die("listen: %s", strerror(errno));
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static int read_full(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r > 0) got += (size_t)r;
        else if (r < 0 && errno == EINTR) continue;
        else return -1; /* EOF, error or SO_RCVTIMEO */
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
    size_t sent = 0;
    while (sent < n) {
        ssize_t w = write(fd, (const char *)buf + sent, n - sent);
        if (w > 0) sent += (size_t)w;
        else if (w < 0 && errno == EINTR) continue;
        else return -1;
    }
    return 0;
}

/* SOCKS5 messages: no-auth greeting, and CONNECT to 127.0.0.1:port (ATYP 1, 10 bytes). */
static const unsigned char GREETING[3] = {5, 1, 0};

static void connect_request(unsigned char req[10], int port) {
    req[0] = 5; req[1] = 1; req[2] = 0; req[3] = 1;
    req[4] = 127; req[5] = 0; req[6] = 0; req[7] = 1;
    req[8] = (unsigned char)(port >> 8);
    req[9] = (unsigned char)(port & 0xff);
}

/* A successful reply to our request: VER 5, REP 0, RSV 0, ATYP IPv4 (loopback binds IPv4). */
static int reply_ok(const unsigned char *r) {
    return r[0] == 5 && r[1] == 0 && r[2] == 0 && r[3] == 1;
}

/*
 * A blocking connection to 127.0.0.1:target, through the proxy when proxy_port > 0, with the
 * SOCKS5 handshake done. Reads time out after 5 s so a stuck proxy cannot hang the benchmark.
 */
static int open_tunnel_blocking(int proxy_port, int target_port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    set_nodelay(fd);
    struct sockaddr_in a = loopback(proxy_port > 0 ? proxy_port : target_port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect to port %d: %s", ntohs(a.sin_port), strerror(errno));
    if (proxy_port > 0) {
        unsigned char r[10], req[10];
        if (write_full(fd, GREETING, 3) < 0 || read_full(fd, r, 2) < 0) die("SOCKS greeting failed: %s", strerror(errno));
        if (r[0] != 5 || r[1] != 0) die("SOCKS greeting refused: %02x %02x", r[0], r[1]);
        connect_request(req, target_port);
        if (write_full(fd, req, 10) < 0 || read_full(fd, r, 10) < 0) die("SOCKS request failed: %s", strerror(errno));
        if (!reply_ok(r)) die("SOCKS CONNECT refused: rep=%d atyp=%d", r[1], r[3]);
    }
    return fd;
}

/* Percentile of a sorted array (nearest rank). */
static double percentile(const double *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n) i = n - 1;
    return sorted[i];
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------------------------------------
 * serve: the target servers
 * ------------------------------------------------------------------------------------------- */

enum kind { LISTEN_BULK, LISTEN_ECHO, BULK_NEW, BULK_SINK, BULK_SOURCE, ECHO };

struct conn {
    int fd;
    enum kind kind;
    /* Echo bytes that could not be written yet (rare: only when the peer stops reading). */
    unsigned char *pending;
    size_t pending_off, pending_len;
};

static struct conn *conn_new(int ep, int fd, enum kind kind, uint32_t events) {
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) die("out of memory");
    c->fd = fd;
    c->kind = kind;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    return c;
}

static void conn_watch(int ep, struct conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(struct conn *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c->pending);
    free(c);
}

static void serve_accept(int ep, struct conn *listener) {
    for (;;) {
        int fd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) fprintf(stderr, "loadgen: accept: %s\n", strerror(errno));
            return;
        }
        set_nodelay(fd);
        conn_new(ep, fd, listener->kind == LISTEN_BULK ? BULK_NEW : ECHO, EPOLLIN);
    }
}

/* Echo: write back what was read; if the peer is not reading, keep the rest and stop reading. */
static void serve_echo(int ep, struct conn *c, uint32_t events) {
    if (c->pending != NULL) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        ssize_t w = write(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off);
        if (w < 0 && errno != EAGAIN) return conn_close(c);
        if (w > 0) c->pending_off += (size_t)w;
        if (c->pending_off == c->pending_len) {
            free(c->pending);
            c->pending = NULL;
            conn_watch(ep, c, EPOLLIN);
        }
        return;
    }
    ssize_t r = read(c->fd, bulk_buf, 65536);
    if (r == 0 || (r < 0 && errno != EAGAIN)) return conn_close(c);
    if (r < 0) return;
    ssize_t w = write(c->fd, bulk_buf, (size_t)r);
    if (w < 0 && errno != EAGAIN) return conn_close(c);
    if (w < 0) w = 0;
    if (w < r) {
        c->pending_len = (size_t)(r - w);
        c->pending_off = 0;
        c->pending = malloc(c->pending_len);
        if (c->pending == NULL) die("out of memory");
        memcpy(c->pending, bulk_buf + w, c->pending_len);
        conn_watch(ep, c, EPOLLOUT);
    }
}

/* Bulk: the first byte picks the role; a sink reads until EOF, a source writes until an error. */
static void serve_bulk(int ep, struct conn *c, uint32_t events) {
    if (c->kind == BULK_SOURCE) {
        if (events & (EPOLLERR | EPOLLHUP)) return conn_close(c);
        for (int i = 0; i < 4; i++) {
            ssize_t w = write(c->fd, bulk_buf, BUF_SIZE);
            if (w < 0) {
                if (errno != EAGAIN) conn_close(c);
                return;
            }
        }
        return;
    }
    for (int i = 0; i < 8; i++) {
        ssize_t r = read(c->fd, bulk_buf, BUF_SIZE);
        if (r == 0 || (r < 0 && errno != EAGAIN)) return conn_close(c);
        if (r < 0) return;
        if (c->kind == BULK_NEW) {
            if (bulk_buf[0] == 'D') {
                c->kind = BULK_SOURCE;
                conn_watch(ep, c, EPOLLOUT);
                return;
            }
            if (bulk_buf[0] != 'U') return conn_close(c);
            c->kind = BULK_SINK;
        }
    }
}

_Noreturn static void mode_serve(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int bulk_port, echo_port;
    conn_new(ep, listen_loopback(&bulk_port), LISTEN_BULK, EPOLLIN);
    conn_new(ep, listen_loopback(&echo_port), LISTEN_ECHO, EPOLLIN);
    printf("{\"event\":\"listening\",\"bulk\":%d,\"echo\":%d}\n", bulk_port, echo_port);
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            switch (c->kind) {
            case LISTEN_BULK:
            case LISTEN_ECHO: serve_accept(ep, c); break;
            case ECHO: serve_echo(ep, c, events[i].events); break;
            default: serve_bulk(ep, c, events[i].events); break;
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Client options
 * ------------------------------------------------------------------------------------------- */

struct options {
    int port, proxy;
    int upload;           /* bulk: 1 = client→server, 0 = server→client */
    int streams, workers, count, samples, size;
    double seconds, warmup, hold;
    unsigned max_seconds;
};

static struct options parse_options(int argc, char **argv) {
    struct options o = {.upload = 1, .streams = 1, .workers = 32, .count = 1000, .samples = 20000,
                        .size = 64, .seconds = 3, .warmup = 0.5, .hold = 60, .max_seconds = DEFAULT_LIMIT_SECONDS};
    static const struct option longopts[] = {
        {"port", required_argument, 0, 'p'},    {"proxy", required_argument, 0, 'x'},
        {"dir", required_argument, 0, 'd'},     {"streams", required_argument, 0, 'n'},
        {"workers", required_argument, 0, 'w'}, {"count", required_argument, 0, 'c'},
        {"samples", required_argument, 0, 's'}, {"size", required_argument, 0, 'b'},
        {"seconds", required_argument, 0, 't'}, {"warmup", required_argument, 0, 'W'},
        {"hold", required_argument, 0, 'h'},    {"max-seconds", required_argument, 0, 'M'},
        {0, 0, 0, 0},
    };
    int ch;
    optind = 2; /* argv[1] is the mode */
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'p': o.port = atoi(optarg); break;
        case 'x': o.proxy = atoi(optarg); break;
        case 'd':
            if (strcmp(optarg, "up") != 0 && strcmp(optarg, "down") != 0) die("--dir: up or down");
            o.upload = strcmp(optarg, "up") == 0;
            break;
        case 'n': o.streams = atoi(optarg); break;
        case 'w': o.workers = atoi(optarg); break;
        case 'c': o.count = atoi(optarg); break;
        case 's': o.samples = atoi(optarg); break;
        case 'b': o.size = atoi(optarg); break;
        case 't': o.seconds = atof(optarg); break;
        case 'W': o.warmup = atof(optarg); break;
        case 'h': o.hold = atof(optarg); break;
        case 'M': o.max_seconds = (unsigned)atoi(optarg); break;
        default: die("unknown option (see the header of loadgen.c)");
        }
    }
    if (o.port <= 0 || o.port > 65535) die("--port is required");
    if (o.proxy < 0 || o.proxy > 65535) die("bad --proxy");
    if (o.streams < 1 || o.workers < 1 || o.count < 1 || o.samples < 1 || o.size < 1 || o.size > 65536) die("bad counts");
    if (o.seconds <= 0 || o.warmup < 0) die("bad --seconds/--warmup");
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * bulk: throughput over N streams
 * ------------------------------------------------------------------------------------------- */

static int mode_bulk(const struct options *o) {
    int n = o->streams;
    int *fds = calloc((size_t)n, sizeof *fds);
    uint64_t *bytes = calloc((size_t)n, sizeof *bytes);     /* per stream, since the start */
    uint64_t *at_start = calloc((size_t)n, sizeof *at_start); /* snapshot when measuring begins */
    if (fds == NULL || bytes == NULL || at_start == NULL) die("out of memory");
    int ep = epoll_create1(EPOLL_CLOEXEC);

    /* Open every stream (blocking handshake), tell the server its role, then go non-blocking. */
    const char role = o->upload ? 'U' : 'D';
    for (int i = 0; i < n; i++) {
        fds[i] = open_tunnel_blocking(o->proxy, o->port);
        if (write_full(fds[i], &role, 1) < 0) die("bulk: cannot send the role byte");
        set_nonblock(fds[i]);
        struct epoll_event ev = {.events = o->upload ? EPOLLOUT : EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }

    double t0 = now_s(), measure_from = t0 + o->warmup, measure_end = 0, started = 0;
    int measuring = 0;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int k = epoll_wait(ep, events, MAX_EVENTS, 20);
        if (k < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < k; e++) {
            int i = (int)events[e].data.u32;
            ssize_t r = o->upload ? write(fds[i], bulk_buf, BUF_SIZE) : read(fds[i], bulk_buf, BUF_SIZE);
            if (r > 0) bytes[i] += (uint64_t)r;
            else if (r == 0) die("bulk: stream %d: the server closed the connection", i);
            else if (errno != EAGAIN && errno != EINTR) die("bulk: stream %d: %s", i, strerror(errno));
        }
        double t = now_s();
        if (!measuring && t >= measure_from) {
            measuring = 1;
            started = t;
            memcpy(at_start, bytes, (size_t)n * sizeof *bytes);
        }
        if (measuring && t >= started + o->seconds) {
            measure_end = t;
            break;
        }
    }

    double secs = measure_end - started, total = 0, lo = 1e18, hi = 0;
    for (int i = 0; i < n; i++) {
        double b = (double)(bytes[i] - at_start[i]);
        total += b;
        if (b < lo) lo = b;
        if (b > hi) hi = b;
    }
    const double MiB = 1048576.0;
    printf("{\"mode\":\"bulk\",\"dir\":\"%s\",\"streams\":%d,\"seconds\":%.3f,\"bytes\":%.0f,"
           "\"mibps\":%.1f,\"stream_min_mibps\":%.1f,\"stream_max_mibps\":%.1f,\"stream_mibps\":[",
           o->upload ? "up" : "down", n, secs, total, total / MiB / secs, lo / MiB / secs, hi / MiB / secs);
    for (int i = 0; i < n; i++) printf("%s%.1f", i ? "," : "", (double)(bytes[i] - at_start[i]) / MiB / secs);
    printf("]}\n");
    fflush(stdout);
    for (int i = 0; i < n; i++) close(fds[i]);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Non-blocking handshakes (shared by `handshakes` and `idle`)
 *
 * A worker walks: connect → [greeting → 05 00 → request → 10-byte reply] → 1 byte → echo.
 * Messages are at most 10 bytes on a fresh socket, so a write either sends them whole or the
 * connection is broken.
 * ------------------------------------------------------------------------------------------- */

enum hs_state { HS_IDLE, HS_CONNECTING, HS_GREETING, HS_REPLY, HS_ECHO, HS_OPEN };

struct worker {
    int fd;
    enum hs_state state;
    int have, need;
    unsigned char buf[16];
    double started;
};

struct hs_stats {
    uint64_t completed, errors, stalls;
    char last_error[128];
};

struct hs_ctx {
    int ep, proxy, port;
    struct hs_stats st;
};

static void hs_fail(struct hs_ctx *h, struct worker *w, const char *what, int err) {
    h->st.errors++;
    snprintf(h->st.last_error, sizeof h->st.last_error, "%s: %s", what, err ? strerror(err) : "unexpected bytes or EOF");
    close(w->fd);
    w->fd = -1;
    w->state = HS_IDLE;
}

static int hs_send(struct worker *w, const void *msg, size_t len, enum hs_state next, int need) {
    if (write(w->fd, msg, len) != (ssize_t)len) return -1;
    w->state = next;
    w->have = 0;
    w->need = need;
    return 0;
}

/* Connected: send the first message and wait for its answer. */
static void hs_connected(struct hs_ctx *h, struct worker *w, uint32_t token) {
    int rc = h->proxy > 0 ? hs_send(w, GREETING, 3, HS_GREETING, 2) : hs_send(w, "x", 1, HS_ECHO, 1);
    if (rc < 0) return hs_fail(h, w, "first write", errno);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = token};
    epoll_ctl(h->ep, EPOLL_CTL_MOD, w->fd, &ev);
}

static void hs_start(struct hs_ctx *h, struct worker *w, uint32_t token) {
    w->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (w->fd < 0) die("socket: %s", strerror(errno));
    set_nodelay(w->fd);
    w->started = now_s();
    w->state = HS_CONNECTING;
    struct sockaddr_in a = loopback(h->proxy > 0 ? h->proxy : h->port);
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = token};
    epoll_ctl(h->ep, EPOLL_CTL_ADD, w->fd, &ev);
    if (connect(w->fd, (struct sockaddr *)&a, sizeof a) == 0) hs_connected(h, w, token);
    else if (errno != EINPROGRESS) hs_fail(h, w, "connect", errno);
}

/* Handles readiness; returns 1 when the worker just completed its echo (state HS_OPEN). */
static int hs_event(struct hs_ctx *h, struct worker *w, uint32_t token, uint32_t events) {
    if (w->state == HS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            hs_fail(h, w, "connect", err);
            return 0;
        }
        if (events & EPOLLOUT) hs_connected(h, w, token);
        return 0;
    }
    ssize_t r = read(w->fd, w->buf + w->have, (size_t)(w->need - w->have));
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (r <= 0) {
        hs_fail(h, w, w->state == HS_ECHO ? "echo" : "SOCKS reply", r < 0 ? errno : 0);
        return 0;
    }
    w->have += (int)r;
    if (w->have < w->need) return 0;
    switch (w->state) {
    case HS_GREETING: {
        if (w->buf[0] != 5 || w->buf[1] != 0) {
            hs_fail(h, w, "greeting reply", 0);
            return 0;
        }
        unsigned char req[10];
        connect_request(req, h->port);
        if (hs_send(w, req, 10, HS_REPLY, 10) < 0) hs_fail(h, w, "request write", errno);
        return 0;
    }
    case HS_REPLY:
        if (!reply_ok(w->buf)) {
            hs_fail(h, w, "CONNECT reply", 0);
            return 0;
        }
        if (hs_send(w, "x", 1, HS_ECHO, 1) < 0) hs_fail(h, w, "data write", errno);
        return 0;
    case HS_ECHO:
        if (w->buf[0] != 'x') {
            hs_fail(h, w, "echo", 0);
            return 0;
        }
        w->state = HS_OPEN;
        h->st.completed++;
        return 1;
    default:
        return 0;
    }
}

/* A worker stuck in a handshake for STALL_SECONDS is counted, closed and (by the caller) restarted. */
static int hs_stalled(struct hs_ctx *h, struct worker *w, double t) {
    if (w->state == HS_IDLE || w->state == HS_OPEN || t - w->started < STALL_SECONDS) return 0;
    h->st.stalls++;
    snprintf(h->st.last_error, sizeof h->st.last_error, "handshake stalled for %.0f s", STALL_SECONDS);
    close(w->fd);
    w->fd = -1;
    w->state = HS_IDLE;
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * handshakes: closed loop of N workers, each connect → handshake → 1-byte echo → close
 * ------------------------------------------------------------------------------------------- */

static int mode_handshakes(const struct options *o) {
    struct hs_ctx h = {.ep = epoll_create1(EPOLL_CLOEXEC), .proxy = o->proxy, .port = o->port};
    int n = o->workers;
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    size_t cap = 1 << 21, nlat = 0; /* per-handshake durations, µs, measured window only */
    double *lat = malloc(cap * sizeof *lat);
    if (ws == NULL || lat == NULL) die("out of memory");
    for (int i = 0; i < n; i++) hs_start(&h, &ws[i], (uint32_t)i);

    double t0 = now_s(), measure_from = t0 + o->warmup, started = 0, t = t0, last_stall_check = t0;
    uint64_t completed_at_start = 0, errors_at_start = 0;
    int measuring = 0;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int k = epoll_wait(h.ep, events, MAX_EVENTS, 20);
        if (k < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        t = now_s();
        for (int e = 0; e < k; e++) {
            uint32_t i = events[e].data.u32;
            struct worker *w = &ws[i];
            if (w->state == HS_IDLE) continue;
            if (hs_event(&h, w, i, events[e].events)) {
                if (measuring && nlat < cap) lat[nlat++] = (t - w->started) * 1e6;
                close(w->fd); /* FIN, as a client that is done would */
                w->state = HS_IDLE;
            }
            if (w->state == HS_IDLE) hs_start(&h, w, i);
        }
        if (t - last_stall_check > 0.25) {
            last_stall_check = t;
            for (int i = 0; i < n; i++)
                if (hs_stalled(&h, &ws[i], t)) hs_start(&h, &ws[i], (uint32_t)i);
        }
        if (!measuring && t >= measure_from) {
            measuring = 1;
            started = t;
            completed_at_start = h.st.completed;
            errors_at_start = h.st.errors + h.st.stalls;
        }
        if (measuring && t >= started + o->seconds) break;
    }
    double secs = t - started;
    uint64_t done = h.st.completed - completed_at_start;
    qsort(lat, nlat, sizeof *lat, cmp_double);
    printf("{\"mode\":\"handshakes\",\"workers\":%d,\"seconds\":%.3f,\"completed\":%llu,\"rate\":%.1f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"errors\":%llu,\"stalls\":%llu,\"errors_in_window\":%llu,\"last_error\":\"%s\"}\n",
           n, secs, (unsigned long long)done, (double)done / secs, percentile(lat, nlat, 50), percentile(lat, nlat, 99),
           (unsigned long long)h.st.errors, (unsigned long long)h.st.stalls,
           (unsigned long long)(h.st.errors + h.st.stalls - errors_at_start), h.st.last_error);
    fflush(stdout);
    for (int i = 0; i < n; i++)
        if (ws[i].state != HS_IDLE) close(ws[i].fd);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * idle: open N tunnels (64 handshakes in flight), hold them idle, close them on request
 * ------------------------------------------------------------------------------------------- */

static int mode_idle(const struct options *o) {
    if (o->proxy <= 0) die("idle: --proxy is required");
    raise_fd_limit();
    struct hs_ctx h = {.ep = epoll_create1(EPOLL_CLOEXEC), .proxy = o->proxy, .port = o->port};
    int n = o->count, inflight_max = 64, next = 0, inflight = 0;
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    if (ws == NULL) die("out of memory");

    double t0 = now_s(), last_stall_check = t0;
    struct epoll_event events[MAX_EVENTS];
    while (h.st.completed < (uint64_t)n) {
        while (inflight < inflight_max && next < n) {
            hs_start(&h, &ws[next], (uint32_t)next);
            next++;
            inflight++;
        }
        int k = epoll_wait(h.ep, events, MAX_EVENTS, 20);
        if (k < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < k; e++) {
            uint32_t i = events[e].data.u32;
            struct worker *w = &ws[i];
            if (w->state == HS_IDLE || w->state == HS_OPEN) continue;
            if (hs_event(&h, w, i, events[e].events)) {
                epoll_ctl(h.ep, EPOLL_CTL_DEL, w->fd, NULL); /* open: leave it idle */
                inflight--;
            } else if (w->state == HS_IDLE) {
                hs_start(&h, w, i); /* retry a failed one */
            }
        }
        double t = now_s();
        if (t - last_stall_check > 0.25) {
            last_stall_check = t;
            for (int i = 0; i < next; i++)
                if (hs_stalled(&h, &ws[i], t)) hs_start(&h, &ws[i], (uint32_t)i);
        }
        if (h.st.errors + h.st.stalls > 100) die("idle: too many failures (%s)", h.st.last_error);
        if (t - t0 > OPEN_DEADLINE_SECONDS)
            die("idle: only %llu of %d tunnels open after %.0f s", (unsigned long long)h.st.completed, n, OPEN_DEADLINE_SECONDS);
    }
    printf("{\"event\":\"open\",\"mode\":\"idle\",\"count\":%d,\"seconds\":%.3f,\"errors\":%llu,\"stalls\":%llu,\"last_error\":\"%s\"}\n",
           n, now_s() - t0, (unsigned long long)h.st.errors, (unsigned long long)h.st.stalls, h.st.last_error);
    fflush(stdout);

    /* Hold until the orchestrator writes a line or goes away, or the hold time is up. */
    struct pollfd p = {.fd = 0, .events = POLLIN};
    poll(&p, 1, (int)(o->hold * 1000));
    for (int i = 0; i < n; i++)
        if (ws[i].state == HS_OPEN) close(ws[i].fd);
    printf("{\"event\":\"closed\"}\n");
    fflush(stdout);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * latency: sequential ping-pong of `size`-byte messages over one tunnel
 * ------------------------------------------------------------------------------------------- */

static int mode_latency(const struct options *o) {
    int fd = open_tunnel_blocking(o->proxy, o->port);
    size_t size = (size_t)o->size;
    unsigned char out[65536], in[65536];
    memset(out, 'p', size);
    int warm = o->samples / 10 < 1000 ? o->samples / 10 : 1000;
    double *lat = malloc((size_t)o->samples * sizeof *lat);
    if (lat == NULL) die("out of memory");
    for (int i = -warm; i < o->samples; i++) {
        double t = now_s();
        if (write_full(fd, out, size) < 0 || read_full(fd, in, size) < 0) die("latency: ping %d: %s", i, strerror(errno));
        if (i >= 0) lat[i] = (now_s() - t) * 1e6;
    }
    close(fd);
    double sum = 0;
    for (int i = 0; i < o->samples; i++) sum += lat[i];
    qsort(lat, (size_t)o->samples, sizeof *lat, cmp_double);
    size_t n = (size_t)o->samples;
    printf("{\"mode\":\"latency\",\"samples\":%d,\"size\":%d,\"min_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
           "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}\n",
           o->samples, o->size, lat[0], percentile(lat, n, 50), percentile(lat, n, 90), percentile(lat, n, 99),
           percentile(lat, n, 99.9), lat[n - 1], sum / (double)n);
    fflush(stdout);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * guard: exec a command with the benchmark's lifetime limits
 * ------------------------------------------------------------------------------------------- */

static int mode_guard(int argc, char **argv) {
    if (argc < 4) die("usage: loadgen guard SECONDS CMD [ARGS...]");
    int seconds = atoi(argv[2]);
    if (seconds <= 0) die("guard: bad SECONDS");
    raise_fd_limit();
    bound_lifetime((unsigned)seconds);
    execvp(argv[3], argv + 3);
    die("guard: exec %s: %s", argv[3], strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage: loadgen serve|bulk|handshakes|latency|idle|guard ... (see loadgen.c)");
    signal(SIGPIPE, SIG_IGN);
    const char *mode = argv[1];
    if (strcmp(mode, "guard") == 0) return mode_guard(argc, argv);
    if (strcmp(mode, "serve") == 0) {
        raise_fd_limit();
        bound_lifetime(argc > 2 ? (unsigned)atoi(argv[2]) : 600);
        mode_serve();
    }
    struct options o = parse_options(argc, argv);
    bound_lifetime(o.max_seconds);
    if (strcmp(mode, "bulk") == 0) return mode_bulk(&o);
    if (strcmp(mode, "handshakes") == 0) return mode_handshakes(&o);
    if (strcmp(mode, "latency") == 0) return mode_latency(&o);
    if (strcmp(mode, "idle") == 0) return mode_idle(&o);
    die("unknown mode %s", mode);
    return 1;
}
