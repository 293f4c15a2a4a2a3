/*
 * loadgen: the load generator and target servers of socksmith's benchmark (bench/run.mjs).
 *
 * One binary, several modes. Every mode talks to 127.0.0.1 only (no address is ever taken from
 * the command line, only ports), is bounded in time (alarm) and exits when its parent dies
 * (PR_SET_PDEATHSIG), so nothing outlives the benchmark. Results are printed as one JSON object
 * per line on stdout; diagnostics go to stderr.
 *
 *   loadgen serve [SECONDS=600]        target servers: a bulk server (first byte 'U' = sink,
 *                                      'D' = endless source), a TCP echo server and a UDP echo
 *                                      server; prints {"event":"listening","bulk":P,"echo":P,"udp_echo":P}
 *   loadgen bulk --port P [--proxy X] --dir up|down --streams N --seconds S [--warmup W]
 *                                      bulk throughput over N streams
 *   loadgen handshakes --port P [--proxy X] --workers N --seconds S [--warmup W]
 *                                      closed-loop connect/handshake/1-byte echo/close
 *   loadgen latency --port P [--proxy X] --samples N --size B
 *                                      sequential ping-pong over one tunnel
 *   loadgen idle --port P --proxy X --count N [--hold S]
 *                                      opens N tunnels, prints {"event":"open",...}, keeps them
 *                                      idle until a line (or EOF) on stdin or S seconds, closes
 *   loadgen udp --port P [--proxy X] --size B --seconds S [--warmup W] [--window N=64]
 *                                      UDP echo rate with at most N datagrams in flight
 *                                      (P = udp_echo; B = payload bytes, 16 to 8192)
 *   loadgen guard SECONDS CMD ARGS...  execs CMD with the same two limits (used for the proxies)
 *
 * With --proxy the client goes through a SOCKS5 proxy on 127.0.0.1:X (no auth, CONNECT with a
 * 10-byte IPv4 request for 127.0.0.1:P); without it, straight to 127.0.0.1:P. Client modes stop
 * by themselves after --max-seconds (default 120) at the latest. In udp mode, --proxy means a
 * UDP ASSOCIATE (DST 0.0.0.0:0) on a TCP connection held open for the whole run, and datagrams to
 * the relay address of the reply (which must be 127.0.0.1) with the RFC 1928 §7 header for
 * 127.0.0.1:P; the header of each reply is checked (ATYP 1, 127.0.0.1:P) and stripped.
 *
 * Measurement notes: bulk and handshake counts start after --warmup seconds; upload bytes are
 * counted when written (the few MB in socket buffers are noise next to GB/s × seconds); a
 * handshake counts once its echo byte is back; latency is CLOCK_MONOTONIC around write+read.
 *
 * udp: one client UDP socket (one association: socksmith locks the client's port on the first
 * datagram), 4 MiB SO_RCVBUF/SO_SNDBUF (rmem_max/wmem_max permitting), sendmmsg/recvmmsg in
 * batches of up to 64. At most --window datagrams are in flight (sent, not yet echoed): a closed
 * loop, so the rate is what the path sustains rather than how fast a socket buffer overflows.
 * Each payload carries a sequence number, a window slot and a per-run tag; a bitmap of the
 * sequence numbers seen tells echoes from duplicates. A slot with no echo after
 * UDP_RECLAIM_SECONDS is given back to the window (the datagram may still come back: it then
 * counts as received, and as "late"). After the measured seconds the client stops sending and
 * drains for up to UDP_DRAIN_SECONDS; lost = sent - received over the whole run, warm-up
 * included. rate = echoes received per measured second (one echo = one datagram each way).
 * Kernel drop counters of the sockets involved (/proc/net/udp, last column) are read before and
 * after, to say where datagrams were lost: the client socket, the relay socket, the echo server,
 * or any other UDP socket (through the proxy: its outbound socket).
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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (1 << 20)       /* bulk read/write size */
#define MAX_EVENTS 256
#define STALL_SECONDS 5.0        /* a handshake not finished by then counts as stalled */
#define OPEN_DEADLINE_SECONDS 60.0 /* idle: all tunnels must be open by then */
#define DEFAULT_LIMIT_SECONDS 120 /* hard lifetime of a client mode unless --max-seconds */
#define UDP_BATCH 64             /* datagrams per sendmmsg/recvmmsg */
#define UDP_MAX_SIZE 8192        /* largest udp --size */
#define UDP_BUF (UDP_MAX_SIZE + 64) /* per-datagram buffer: payload, SOCKS header, room to spare */
#define UDP_SOCKBUF (4 << 20)    /* SO_RCVBUF/SO_SNDBUF asked for on our UDP sockets */
#define UDP_MAX_WINDOW 4096
#define UDP_RECLAIM_SECONDS 0.2  /* an unanswered datagram frees its window slot after this */
#define UDP_DRAIN_SECONDS 0.5    /* after the measured seconds, wait this long for stragglers */

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

/* A non-blocking UDP socket on 127.0.0.1 with a kernel-chosen port (in *port) and big buffers. */
static int udp_bind_loopback(int *port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    int size = UDP_SOCKBUF;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_in a = loopback(0);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind: %s", strerror(errno));
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
static int connect_blocking(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    set_nodelay(fd);
    struct sockaddr_in a = loopback(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect to port %d: %s", port, strerror(errno));
    return fd;
}

/* Greeting, then a 10-byte request; the 10-byte reply lands in r (checked by reply_ok). */
static void socks5_blocking(int fd, const unsigned char req[10], unsigned char r[10], const char *what) {
    if (write_full(fd, GREETING, 3) < 0 || read_full(fd, r, 2) < 0) die("SOCKS greeting failed: %s", strerror(errno));
    if (r[0] != 5 || r[1] != 0) die("SOCKS greeting refused: %02x %02x", r[0], r[1]);
    if (write_full(fd, req, 10) < 0 || read_full(fd, r, 10) < 0) die("SOCKS request failed: %s", strerror(errno));
    if (!reply_ok(r)) die("SOCKS %s refused: rep=%d atyp=%d", what, r[1], r[3]);
}

static int open_tunnel_blocking(int proxy_port, int target_port) {
    int fd = connect_blocking(proxy_port > 0 ? proxy_port : target_port);
    if (proxy_port > 0) {
        unsigned char r[10], req[10];
        connect_request(req, target_port);
        socks5_blocking(fd, req, r, "CONNECT");
    }
    return fd;
}

/*
 * UDP ASSOCIATE with DST 0.0.0.0:0 (the client's port is learnt from its first datagram) over a
 * new blocking TCP connection, which the caller keeps open for the association to live. The
 * relay must be on 127.0.0.1 (we never send anywhere else); its port goes in *relay_port.
 */
static int udp_associate_blocking(int proxy_port, int *relay_port) {
    static const unsigned char req[10] = {5, 3, 0, 1, 0, 0, 0, 0, 0, 0};
    unsigned char r[10];
    int fd = connect_blocking(proxy_port);
    socks5_blocking(fd, req, r, "UDP ASSOCIATE");
    if (r[4] != 127 || r[5] != 0 || r[6] != 0 || r[7] != 1) die("UDP ASSOCIATE: relay on %d.%d.%d.%d, not 127.0.0.1", r[4], r[5], r[6], r[7]);
    *relay_port = r[8] << 8 | r[9];
    if (*relay_port == 0) die("UDP ASSOCIATE: relay port 0");
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

enum kind { LISTEN_BULK, LISTEN_ECHO, BULK_NEW, BULK_SINK, BULK_SOURCE, ECHO, UDP_ECHO };

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

static unsigned char udp_in[UDP_BATCH][UDP_BUF];

/*
 * UDP echo: each datagram goes back whole to its source, in batches (recvmmsg, then sendmmsg of
 * the same messages). A reply that cannot be sent is dropped, as UDP would; the client counts it
 * lost. At most 16 batches per wakeup, so the TCP servers in the same loop get their turn.
 */
static void serve_udp_echo(struct conn *c) {
    struct mmsghdr msgs[UDP_BATCH];
    struct iovec iov[UDP_BATCH];
    struct sockaddr_in from[UDP_BATCH];
    for (int round = 0; round < 16; round++) {
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < UDP_BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = udp_in[i], .iov_len = UDP_BUF};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(c->fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) return; /* EAGAIN, or an ICMP error for an earlier reply: nothing to echo */
        for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
        for (int sent = 0; sent < n;) {
            int w = sendmmsg(c->fd, msgs + sent, (unsigned)(n - sent), 0);
            if (w > 0) sent += w;
            else if (errno == EAGAIN || errno == ENOBUFS) break; /* drop the rest of the batch */
            else sent++;                                          /* skip the one that failed */
        }
        if (n < UDP_BATCH) return;
    }
}

_Noreturn static void mode_serve(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int bulk_port, echo_port, udp_port;
    conn_new(ep, listen_loopback(&bulk_port), LISTEN_BULK, EPOLLIN);
    conn_new(ep, listen_loopback(&echo_port), LISTEN_ECHO, EPOLLIN);
    conn_new(ep, udp_bind_loopback(&udp_port), UDP_ECHO, EPOLLIN);
    printf("{\"event\":\"listening\",\"bulk\":%d,\"echo\":%d,\"udp_echo\":%d}\n", bulk_port, echo_port, udp_port);
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
            case UDP_ECHO: serve_udp_echo(c); break;
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
    int streams, workers, count, samples, size, window;
    double seconds, warmup, hold;
    unsigned max_seconds;
};

static struct options parse_options(int argc, char **argv) {
    struct options o = {.upload = 1, .streams = 1, .workers = 32, .count = 1000, .samples = 20000,
                        .size = 64, .window = 64, .seconds = 3, .warmup = 0.5, .hold = 60, .max_seconds = DEFAULT_LIMIT_SECONDS};
    static const struct option longopts[] = {
        {"port", required_argument, 0, 'p'},    {"proxy", required_argument, 0, 'x'},
        {"dir", required_argument, 0, 'd'},     {"streams", required_argument, 0, 'n'},
        {"workers", required_argument, 0, 'w'}, {"count", required_argument, 0, 'c'},
        {"samples", required_argument, 0, 's'}, {"size", required_argument, 0, 'b'},
        {"seconds", required_argument, 0, 't'}, {"warmup", required_argument, 0, 'W'},
        {"hold", required_argument, 0, 'h'},    {"max-seconds", required_argument, 0, 'M'},
        {"window", required_argument, 0, 'N'},
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
        case 'N': o.window = atoi(optarg); break;
        default: die("unknown option (see the header of loadgen.c)");
        }
    }
    if (o.port <= 0 || o.port > 65535) die("--port is required");
    if (o.proxy < 0 || o.proxy > 65535) die("bad --proxy");
    if (o.streams < 1 || o.workers < 1 || o.count < 1 || o.samples < 1 || o.size < 1 || o.size > 65536 || o.window < 1 ||
        o.window > UDP_MAX_WINDOW)
        die("bad counts");
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
 * udp: echo rate with at most --window datagrams in flight, direct or through UDP ASSOCIATE
 * ------------------------------------------------------------------------------------------- */

/* One IPv4 UDP socket of /proc/net/udp: its inode (identity), local port and drop counter. */
struct udp_sock_stat {
    unsigned long inode, drops;
    int port;
};

#define UDP_TABLE_MAX 4096

/* Reads /proc/net/udp into out; returns the number of sockets, or -1 if it cannot be read. */
static int read_udp_table(struct udp_sock_stat *out, int cap) {
    FILE *f = fopen("/proc/net/udp", "r");
    if (f == NULL) return -1;
    char line[512];
    int n = 0;
    if (fgets(line, sizeof line, f) == NULL) n = -1; /* the header line */
    /* sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops */
    while (n >= 0 && n < cap && fgets(line, sizeof line, f) != NULL) {
        char *tok[16], *save = NULL;
        int k = 0;
        for (char *p = strtok_r(line, " \n", &save); p != NULL && k < 16; p = strtok_r(NULL, " \n", &save)) tok[k++] = p;
        char *colon = k >= 13 ? strchr(tok[1], ':') : NULL;
        if (colon == NULL) continue;
        out[n].port = (int)strtoul(colon + 1, NULL, 16);
        out[n].inode = strtoul(tok[9], NULL, 10);
        out[n].drops = strtoul(tok[12], NULL, 10);
        n++;
    }
    fclose(f);
    return n;
}

/* Drops between two snapshots, by whose socket dropped: ours, the relay's, the echo server's, any other. */
struct udp_drops {
    long client, relay, server, other;
};

static struct udp_drops udp_drops_between(const struct udp_sock_stat *before, int nb, const struct udp_sock_stat *after, int na,
                                          int client_port, int relay_port, int server_port) {
    struct udp_drops d = {0, 0, 0, 0};
    if (nb < 0 || na < 0) return (struct udp_drops){-1, -1, -1, -1};
    for (int i = 0; i < na; i++) {
        unsigned long base = 0;
        for (int j = 0; j < nb; j++)
            if (before[j].inode == after[i].inode) base = before[j].drops;
        long delta = (long)(after[i].drops - base);
        if (after[i].port == client_port) d.client += delta;
        else if (relay_port > 0 && after[i].port == relay_port) d.relay += delta;
        else if (after[i].port == server_port) d.server += delta;
        else d.other += delta;
    }
    return d;
}

/*
 * The client's state. Payload layout (after the SOCKS header, if any): sequence number (8 bytes),
 * window slot (4), run tag (4), then filler. The SOCKS header of a request and the one expected
 * on every reply are the same: 00 00 00 01 127.0.0.1 P.
 */
struct udp_client {
    int fd, size, window, hdr_len;
    unsigned char hdr[10];
    uint32_t tag;
    uint64_t *slot_seq;
    double *slot_sent;  /* 0 when the slot is free */
    int *free_slots, nfree;
    unsigned char *seen; /* bitmap of the sequence numbers echoed */
    size_t seen_bytes;
    uint64_t next_seq, received, late, duplicates, bad, reclaimed, send_errors, recv_errors;
    float *rtt;          /* µs, measured window only, up to rtt_cap samples */
    size_t nrtt, rtt_cap;
    char last_error[128];
};

static unsigned char udp_out[UDP_BATCH][UDP_BUF];

static void udp_error(struct udp_client *u, uint64_t *counter, const char *what) {
    (*counter)++;
    snprintf(u->last_error, sizeof u->last_error, "%s: %s", what, strerror(errno));
}

/* Sends up to one batch into the free window slots; returns how many went out. */
static int udp_send_batch(struct udp_client *u, double t) {
    int want = u->nfree < UDP_BATCH ? u->nfree : UDP_BATCH;
    if (want == 0) return 0;
    size_t need = (size_t)((u->next_seq + (uint64_t)want) / 8 + 1);
    if (need > u->seen_bytes) {
        size_t grown = u->seen_bytes * 2 > need ? u->seen_bytes * 2 : need;
        u->seen = realloc(u->seen, grown);
        if (u->seen == NULL) die("out of memory");
        memset(u->seen + u->seen_bytes, 0, grown - u->seen_bytes);
        u->seen_bytes = grown;
    }
    struct mmsghdr msgs[UDP_BATCH];
    struct iovec iov[UDP_BATCH][2];
    memset(msgs, 0, (size_t)want * sizeof msgs[0]);
    for (int i = 0; i < want; i++) {
        uint64_t seq = u->next_seq + (uint64_t)i;
        uint32_t slot = (uint32_t)u->free_slots[u->nfree - 1 - i];
        memcpy(udp_out[i], &seq, 8);
        memcpy(udp_out[i] + 8, &slot, 4);
        memcpy(udp_out[i] + 12, &u->tag, 4);
        int k = 0;
        if (u->hdr_len > 0) iov[i][k++] = (struct iovec){.iov_base = u->hdr, .iov_len = (size_t)u->hdr_len};
        iov[i][k++] = (struct iovec){.iov_base = udp_out[i], .iov_len = (size_t)u->size};
        msgs[i].msg_hdr.msg_iov = iov[i];
        msgs[i].msg_hdr.msg_iovlen = (size_t)k;
    }
    int n = sendmmsg(u->fd, msgs, (unsigned)want, 0);
    if (n < 0) {
        /* EAGAIN/ENOBUFS: the socket buffer is full, wait. Anything else (ECONNREFUSED after an
         * ICMP port unreachable: nobody on the relay port) is counted; the datagram is not sent. */
        if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) udp_error(u, &u->send_errors, "send");
        return 0;
    }
    for (int i = 0; i < n; i++) {
        int slot = u->free_slots[u->nfree - 1 - i];
        u->slot_seq[slot] = u->next_seq + (uint64_t)i;
        u->slot_sent[slot] = t;
    }
    u->nfree -= n;
    u->next_seq += (uint64_t)n;
    return n;
}

/* Receives up to one batch of echoes; returns how many datagrams came in (0: none waiting). */
static int udp_recv_batch(struct udp_client *u, double t, int measuring) {
    struct mmsghdr msgs[UDP_BATCH];
    struct iovec iov[UDP_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < UDP_BATCH; i++) {
        iov[i] = (struct iovec){.iov_base = udp_in[i], .iov_len = UDP_BUF};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(u->fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        udp_error(u, &u->recv_errors, "recv"); /* a pending ICMP error, reported once */
        return 1;
    }
    for (int i = 0; i < n; i++) {
        const unsigned char *m = udp_in[i];
        if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || msgs[i].msg_len != (unsigned)(u->hdr_len + u->size) ||
            (u->hdr_len > 0 && memcmp(m, u->hdr, (size_t)u->hdr_len) != 0)) {
            u->bad++;
            continue;
        }
        m += u->hdr_len;
        uint64_t seq;
        uint32_t slot, tag;
        memcpy(&seq, m, 8);
        memcpy(&slot, m + 8, 4);
        memcpy(&tag, m + 12, 4);
        if (tag != u->tag || seq >= u->next_seq || slot >= (uint32_t)u->window) {
            u->bad++;
            continue;
        }
        if (u->seen[seq / 8] & (1u << (seq % 8))) {
            u->duplicates++;
            continue;
        }
        u->seen[seq / 8] |= (unsigned char)(1u << (seq % 8));
        u->received++;
        if (u->slot_sent[slot] > 0 && u->slot_seq[slot] == seq) {
            if (measuring && u->nrtt < u->rtt_cap) u->rtt[u->nrtt++] = (float)((t - u->slot_sent[slot]) * 1e6);
            u->slot_sent[slot] = 0;
            u->free_slots[u->nfree++] = (int)slot;
        } else {
            u->late++; /* its slot was reclaimed already */
        }
    }
    return n;
}

/* Gives back the slots of datagrams unanswered for UDP_RECLAIM_SECONDS. */
static void udp_reclaim(struct udp_client *u, double t) {
    for (int s = 0; s < u->window; s++) {
        if (u->slot_sent[s] > 0 && t - u->slot_sent[s] > UDP_RECLAIM_SECONDS) {
            u->slot_sent[s] = 0;
            u->free_slots[u->nfree++] = s;
            u->reclaimed++;
        }
    }
}

/* The UDP ASSOCIATE connection must stay open and silent: EOF or bytes on it end the run. */
static void udp_check_control(int tcp) {
    if (tcp < 0) return;
    struct pollfd p = {.fd = tcp, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return;
    unsigned char b;
    ssize_t r = read(tcp, &b, 1);
    if (r == 0) die("udp: the proxy closed the UDP ASSOCIATE connection");
    if (r > 0) die("udp: unexpected byte 0x%02x on the UDP ASSOCIATE connection", b);
    if (errno != EAGAIN && errno != EINTR) die("udp: UDP ASSOCIATE connection: %s", strerror(errno));
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static int mode_udp(const struct options *o) {
    if (o->size < 16 || o->size > UDP_MAX_SIZE) die("udp: --size must be 16 to %d", UDP_MAX_SIZE);
    struct udp_client u = {.size = o->size, .window = o->window, .rtt_cap = 1 << 21};
    u.tag = (uint32_t)getpid() ^ (uint32_t)(now_s() * 1e6);
    u.slot_seq = calloc((size_t)u.window, sizeof *u.slot_seq);
    u.slot_sent = calloc((size_t)u.window, sizeof *u.slot_sent);
    u.free_slots = calloc((size_t)u.window, sizeof *u.free_slots);
    u.seen_bytes = 1 << 20;
    u.seen = calloc(u.seen_bytes, 1);
    u.rtt = malloc(u.rtt_cap * sizeof *u.rtt);
    if (u.slot_seq == NULL || u.slot_sent == NULL || u.free_slots == NULL || u.seen == NULL || u.rtt == NULL) die("out of memory");
    for (int s = u.window - 1; s >= 0; s--) u.free_slots[u.nfree++] = s;
    for (int i = 0; i < UDP_BATCH; i++) memset(udp_out[i], 'u', UDP_BUF);

    /* Through the proxy: the association first, then every datagram to its relay, with the header. */
    int tcp = -1, relay_port = 0, client_port;
    if (o->proxy > 0) {
        tcp = udp_associate_blocking(o->proxy, &relay_port);
        u.hdr_len = 10;
        unsigned char h[10] = {0, 0, 0, 1, 127, 0, 0, 1, (unsigned char)(o->port >> 8), (unsigned char)(o->port & 0xff)};
        memcpy(u.hdr, h, sizeof h);
    }
    u.fd = udp_bind_loopback(&client_port);
    int rcvbuf = 0;
    socklen_t optlen = sizeof rcvbuf;
    getsockopt(u.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &optlen);
    struct sockaddr_in to = loopback(o->proxy > 0 ? relay_port : o->port);
    if (connect(u.fd, (struct sockaddr *)&to, sizeof to) < 0) die("udp: connect: %s", strerror(errno)); /* and only its replies come in */

    static struct udp_sock_stat before[UDP_TABLE_MAX], after[UDP_TABLE_MAX];
    int nbefore = read_udp_table(before, UDP_TABLE_MAX);

    double t0 = now_s(), measure_from = t0 + o->warmup, started = 0, measure_end = 0, drain_end = 0, t = t0;
    double last_check = t0, last_echo = 0, max_gap = 0;
    uint64_t sent_at_start = 0, received_at_start = 0, sent_in_window = 0, received_in_window = 0;
    int measuring = 0, sending = 1;
    for (;;) {
        t = now_s();
        if (sending && !measuring && t >= measure_from) {
            measuring = 1;
            started = last_echo = t;
            sent_at_start = u.next_seq;
            received_at_start = u.received;
        } else if (measuring && t >= started + o->seconds) {
            measuring = sending = 0;
            measure_end = t;
            sent_in_window = u.next_seq - sent_at_start;
            received_in_window = u.received - received_at_start;
            if (t - last_echo > max_gap) max_gap = t - last_echo;
        }
        if (!sending && (u.received == u.next_seq || t >= measure_end + UDP_DRAIN_SECONDS)) {
            drain_end = t;
            break;
        }
        int progress = 0, blocked = 0;
        if (sending && u.nfree > 0) {
            if (udp_send_batch(&u, t) > 0) progress = 1;
            else blocked = 1;
        }
        for (int b = 0; b < 4; b++) {
            uint64_t before_rx = u.received;
            int r = udp_recv_batch(&u, t, measuring);
            if (r <= 0) break;
            progress = 1;
            if (measuring && u.received > before_rx) {
                if (t - last_echo > max_gap) max_gap = t - last_echo;
                last_echo = t;
            }
            if (r < UDP_BATCH) break;
        }
        if (t - last_check >= 0.01) {
            last_check = t;
            udp_reclaim(&u, t);
            udp_check_control(tcp);
        }
        if (!progress) {
            /* Nothing to send (window full) or the send buffer is full: wait for echoes or room. */
            struct pollfd p = {.fd = u.fd, .events = POLLIN | (blocked ? POLLOUT : 0)};
            if (poll(&p, 1, 10) < 0 && errno != EINTR) die("poll: %s", strerror(errno));
        }
    }
    int nafter = read_udp_table(after, UDP_TABLE_MAX);
    struct udp_drops d = udp_drops_between(before, nbefore, after, nafter, client_port, relay_port, o->port);

    double secs = measure_end - started;
    uint64_t lost = u.next_seq - u.received;
    qsort(u.rtt, u.nrtt, sizeof *u.rtt, cmp_float);
    double p50 = u.nrtt ? u.rtt[u.nrtt / 2] : 0, p99 = u.nrtt ? u.rtt[(size_t)((double)u.nrtt * 0.99)] : 0;
    printf("{\"mode\":\"udp\",\"via\":\"%s\",\"size\":%d,\"window\":%d,\"seconds\":%.3f,\"rate\":%.1f,"
           "\"sent\":%llu,\"received\":%llu,\"lost\":%llu,\"loss_pct\":%.4f,\"sent_in_window\":%llu,\"received_in_window\":%llu,"
           "\"late\":%llu,\"duplicates\":%llu,\"bad\":%llu,\"reclaimed\":%llu,\"send_errors\":%llu,\"recv_errors\":%llu,"
           "\"max_gap_ms\":%.1f,\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f,\"drain_ms\":%.1f,\"rcvbuf\":%d,"
           "\"drops\":{\"client\":%ld,\"relay\":%ld,\"server\":%ld,\"other\":%ld},\"last_error\":\"%s\"}\n",
           o->proxy > 0 ? "proxy" : "direct", u.size, u.window, secs, (double)received_in_window / secs,
           (unsigned long long)u.next_seq, (unsigned long long)u.received, (unsigned long long)lost,
           u.next_seq ? 100.0 * (double)lost / (double)u.next_seq : 0.0, (unsigned long long)sent_in_window,
           (unsigned long long)received_in_window, (unsigned long long)u.late, (unsigned long long)u.duplicates,
           (unsigned long long)u.bad, (unsigned long long)u.reclaimed, (unsigned long long)u.send_errors,
           (unsigned long long)u.recv_errors, max_gap * 1e3, p50, p99, (drain_end - measure_end) * 1e3, rcvbuf,
           d.client, d.relay, d.server, d.other, u.last_error);
    fflush(stdout);
    close(u.fd);
    if (tcp >= 0) close(tcp);
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
    if (argc < 2) die("usage: loadgen serve|bulk|handshakes|latency|idle|udp|guard ... (see loadgen.c)");
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
    if (strcmp(mode, "udp") == 0) return mode_udp(&o);
    die("unknown mode %s", mode);
    return 1;
}
