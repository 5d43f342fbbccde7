/*
 * The native load generator: C, epoll, one thread, so that the load
 * generator is not what limits a server.  Built by bench/run.py with the
 * system's cc (no download).  It speaks what bench/dialects.py speaks and
 * makes the same checks as bench/scenarios.py; each mode prints one JSON
 * object with the same figures, and, given the server's PIDs, the CPU they
 * used in the measured phase (as a share of one core, from /proc), and the
 * part of it in user mode (the rest is the kernel's work for them).
 *
 *   loadgen fanout PORT DIALECT SUBSCRIBERS MESSAGES WINDOW [PID...]
 *   loadgen pairs  PORT DIALECT CHANNELS EXCHANGES REFERENCE_RATE PACED_S [PID...]
 *   loadgen games  PORTS PLAYERS GAMES_EACH [PID...]
 *   loadgen storm  PORT DIALECT CLIENTS [PID...]
 *
 * DIALECT is soukets, floor, ceiling, redis or nats; PORTS is one port or
 * several joined by commas (players take them in turn).
 *
 * fanout: SUBSCRIBERS connections subscribe to channel "bench"; a publisher
 *   sends MESSAGES payloads as fast as it may while staying at most WINDOW
 *   ahead of the slowest subscriber.  Subscriber 0 checks that it gets
 *   every sequence number in order.
 * pairs: CHANNELS channels of two members playing ping-pong, EXCHANGES
 *   round trips each, flat out (messages/s); then paced at 25, 50 and 80 %
 *   of REFERENCE_RATE (or of the flat-out rate if 0) for PACED_S seconds
 *   each: round trips at those loads.
 * games: soukets only.  PLAYERS queue, move "rock" on every round, check
 *   every result (two moves, nobody timed out) and queue again until
 *   PLAYERS * GAMES_EACH / 2 games are over.
 * storm: CLIENTS connections opened at once; each counts once the server
 *   greets it (soukets' welcome, NATS' INFO, Redis' answer to HELLO).
 *
 * Payloads (100 bytes) carry "@@" (measured) or "##" (warm-up), a sequence
 * number and a send time; connections find them in the raw stream,
 * whatever the server wraps around them, so every delivery is counted
 * without parsing.  Every phase has a deadline and a stall check: a lost,
 * extra or reordered message, a closed connection or an error frame fails
 * the run (exit 1, the reason on stderr).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD 100
#define MARK_LEN 31 /* "@@" + 9 digits + ":" + 19 digits */
#define MAX_SAMPLES 4000000
#define READ_SIZE 65536
#define DEADLINE 120.0

/* One connection.  Fanout and pairs use the mark scanner's fields, games
 * the line buffer, storm the greeting. */
typedef struct {
    int fd;
    long measured, warm, expect;
    int check_order;
    char carry[MARK_LEN];
    int carried;
    /* games */
    char *line;
    size_t used, cap;
    int welcomed, played;
    uint64_t moved_at;
    /* storm */
    int connected, greeted;
    uint64_t greeted_at;
} Conn;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void fail(const char *why) {
    fprintf(stderr, "loadgen: %s\n", why);
    exit(1);
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *data, size_t n) {
    while (n) {
        ssize_t w = write(fd, data, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                fd_set set;
                FD_ZERO(&set);
                FD_SET(fd, &set);
                select(fd + 1, NULL, &set, NULL, NULL);
                continue;
            }
            die("write");
        }
        data += w;
        n -= w;
    }
}

/* Read what FD has, at most one buffer; 0 if nothing (EAGAIN); fails the
 * run if the server closed it. */
static ssize_t read_some(int fd, char *into) {
    ssize_t r = read(fd, into, READ_SIZE);
    if (r == 0) fail("the server closed a connection");
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        die("read");
    }
    return r;
}

static const char *dialect;
static int is(const char *name) { return strcmp(dialect, name) == 0; }

static size_t hello_cmd(char *out) {
    if (is("redis")) return sprintf(out, "HELLO 3\r\n");
    if (is("nats"))
        return sprintf(out, "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n");
    return 0;
}

static size_t subscribe_cmd(char *out, const char *channel) {
    size_t n = hello_cmd(out);
    if (is("redis")) return n + sprintf(out + n, "SUBSCRIBE %s\r\n", channel);
    if (is("nats")) return n + sprintf(out + n, "SUB %s 1\r\n", channel);
    return n + sprintf(out + n, "%s;{\"type\":\"subscribe\"}\n", channel);
}

/* One publish on CHANNEL of a payload with MARK (@@ or ##), sequence
 * number and send time. */
static size_t publish_cmd(char *out, const char *channel, const char *mark, long seq) {
    char payload[PAYLOAD + 1];
    int n = snprintf(payload, sizeof payload, "%s%09ld:%019llu", mark, seq,
                     (unsigned long long)now_ns());
    memset(payload + n, 'x', PAYLOAD - n);
    payload[PAYLOAD] = 0;
    if (is("redis")) return sprintf(out, "PUBLISH %s %s\r\n", channel, payload);
    if (is("nats")) return sprintf(out, "PUB %s %d\r\n%s\r\n", channel, PAYLOAD, payload);
    return sprintf(out, "%s;{\"type\":\"publish\",\"data\":\"%s\"}\n", channel, payload);
}

static double *samples;
static long nsamples;
static int order_error;

static void sample(double ms) {
    if (nsamples < MAX_SAMPLES) samples[nsamples++] = ms;
}

/* Count every mark in what C received (with the few bytes its last read
 * ended on); with SAMPLE_EVERY, one measured mark in that many gives a
 * latency sample from its send time.  The number of measured marks. */
static long scan(Conn *c, const char *data, size_t n, int sample_every) {
    static char buf[READ_SIZE + MARK_LEN];
    size_t len = c->carried;
    memcpy(buf, c->carry, len);
    memcpy(buf + len, data, n);
    len += n;
    long found = 0;
    size_t i = 0;
    /* (Only marks have an '@' or a '#': jump from one to the next; where
     * the next of each is, is looked up again only once passed.) */
    const char *at = buf, *hash = buf, *end = buf + len;
    while (i + 1 < len) {
        char c0 = buf[i];
        if ((c0 == '@' || c0 == '#') && buf[i + 1] == c0) {
            if (i + MARK_LEN > len) break; /* incomplete: keep it */
            if (c0 == '#') {
                c->warm++;
            } else {
                long seq = strtol(buf + i + 2, NULL, 10);
                if (c->check_order) {
                    if (seq != c->expect) order_error = 1;
                    c->expect = seq + 1;
                }
                c->measured++;
                found++;
                if (sample_every && seq % sample_every == 0) {
                    unsigned long long sent = strtoull(buf + i + 12, NULL, 10);
                    sample((now_ns() - sent) / 1e6);
                }
            }
            i += MARK_LEN;
        } else {
            const char *from = buf + i + 1;
            if (at && at < from) at = memchr(from, '@', end - from);
            if (hash && hash < from) hash = memchr(from, '#', end - from);
            const char *next = at && (!hash || at < hash) ? at : hash;
            if (next == NULL) { i = len; break; }
            i = next - buf;
        }
    }
    size_t keep = len - i;
    if (keep > MARK_LEN - 1) keep = MARK_LEN - 1;
    memcpy(c->carry, buf + len - keep, keep);
    c->carried = keep;
    return found;
}

/* User and system CPU seconds of processes PIDS, from /proc; the user part
 * alone in *USER. */
static double server_cpu_s(char **pids, int n, double *user) {
    double total = 0;
    *user = 0;
    for (int k = 0; k < n; k++) {
        char path[64], line[4096];
        snprintf(path, sizeof path, "/proc/%s/stat", pids[k]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t got = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[got] = 0;
        char *p = strrchr(line, ')');
        if (!p) continue;
        unsigned long utime = 0, stime = 0;
        /* fields after the command: state is 3rd, utime 14th, stime 15th */
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
        total += (utime + stime) / (double)sysconf(_SC_CLK_TCK);
        *user += utime / (double)sysconf(_SC_CLK_TCK);
    }
    return total;
}

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ", \"PREFIXp50_ms\": ..., p99, max" of the samples from FROM on. */
static void print_percentiles(const char *prefix, long from) {
    long n = nsamples - from;
    if (n <= 0) fail("no latency samples");
    double *s = samples + from;
    qsort(s, n, sizeof(double), cmp);
    long at99 = (long)(n * 0.99);
    if (at99 >= n) at99 = n - 1;
    printf(", \"%sp50_ms\": %.3f, \"%sp99_ms\": %.3f, \"%smax_ms\": %.3f", prefix, s[n / 2],
           prefix, s[at99], prefix, s[n - 1]);
}

/* The one CPU process PID may run on, or -1 if it may run on several. */
static int pinned_cpu(const char *pid) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(atoi(pid), sizeof set, &set) != 0 || CPU_COUNT(&set) != 1) return -1;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set)) return i;
    return -1;
}

/* CPU CPU's busy and total time so far, in clock ticks, from /proc/stat
 * (busy: all but idle and iowait, so the kernel's network work done there
 * in softirq, which no process is charged for, counts); 0 if unknown. */
static int core_ticks(int cpu, unsigned long long *busy, unsigned long long *total) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char line[512], name[16];
    int name_len = snprintf(name, sizeof name, "cpu%d ", cpu), found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long long v[8] = {0};
        if (strncmp(line, name, name_len) != 0) continue;
        sscanf(line + name_len, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7]);
        *total = 0;
        for (int i = 0; i < 8; i++) *total += v[i];
        *busy = *total - v[3] - v[4];
        found = 1;
    }
    fclose(f);
    return found;
}

/* The host's count of connections its kernel dropped because a listening
 * socket's accept queue was full (TcpExt ListenOverflows, /proc/net/netstat):
 * each such client tries again only after a second. -1 if unknown. */
static long listen_overflows(void) {
    FILE *f = fopen("/proc/net/netstat", "r");
    if (!f) return -1;
    static char names[8192], values[8192];
    long found = -1;
    while (found < 0 && fgets(names, sizeof names, f) && fgets(values, sizeof values, f)) {
        if (strncmp(names, "TcpExt:", 7) != 0) continue;
        char *n_save, *v_save;
        char *n = strtok_r(names, " \n", &n_save), *v = strtok_r(values, " \n", &v_save);
        for (; n && v; n = strtok_r(NULL, " \n", &n_save), v = strtok_r(NULL, " \n", &v_save))
            if (strcmp(n, "ListenOverflows") == 0) {
                found = atol(v);
                break;
            }
    }
    fclose(f);
    return found;
}

/* The measured phase's clocks: wall, our CPU, the servers' CPU, the
 * server's core (when the first server is pinned to one), and the host's
 * listen overflows. */
static char **server_pids;
static int nserver_pids;
static double began, cpu0, server0, server_user0;
static int server_core = -1;
static unsigned long long core_busy0, core_total0;
static long overflows0;

static void start_usage(void) {
    began = now_s();
    cpu0 = cpu_s();
    server0 = server_cpu_s(server_pids, nserver_pids, &server_user0);
    server_core = nserver_pids ? pinned_cpu(server_pids[0]) : -1;
    if (server_core >= 0 && !core_ticks(server_core, &core_busy0, &core_total0)) server_core = -1;
    overflows0 = listen_overflows();
}

static void print_usage(double elapsed) {
    double user;
    double server = server_cpu_s(server_pids, nserver_pids, &user) - server0;
    printf(", \"elapsed_s\": %.6f, \"loadgen_cpu\": %.4f, \"server_cpu\": %.4f"
           ", \"server_user_cpu\": %.4f", elapsed, (cpu_s() - cpu0) / elapsed,
           server / elapsed, (user - server_user0) / elapsed);
    unsigned long long busy, total;
    if (server_core >= 0 && core_ticks(server_core, &busy, &total) && total > core_total0)
        printf(", \"server_core_busy\": %.4f",
               (double)(busy - core_busy0) / (double)(total - core_total0));
    long overflows = listen_overflows();
    if (overflows0 >= 0 && overflows >= 0)
        printf(", \"listen_overflows\": %ld", overflows - overflows0);
}

static int ep;
static struct epoll_event events[1024];
static char in[READ_SIZE];

static void watch(int fd, uint32_t index, uint32_t what) {
    fcntl(fd, F_SETFL, O_NONBLOCK);
    struct epoll_event e = {.events = what, .data.u32 = index};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl");
}

/* Progress check: fails the run if COUNT has not moved for 5 s or the
 * phase is past its deadline. */
typedef struct {
    long last;
    double at, deadline;
    const char *what;
} Progress;

static Progress progress(const char *what) {
    Progress p = {-1, now_s(), now_s() + DEADLINE, what};
    return p;
}

static void check(Progress *p, long count) {
    char why[200];
    double t = now_s();
    if (count != p->last) {
        p->last = count;
        p->at = t;
    } else if (t - p->at > 5) {
        snprintf(why, sizeof why, "%s stopped at %ld", p->what, count);
        fail(why);
    }
    if (t > p->deadline) {
        snprintf(why, sizeof why, "%s never ended", p->what);
        fail(why);
    }
}

/* ------------------------------------------------------------------ fanout */

static int fanout(int port, int nsubs, long messages, long window) {
    Conn *subs = calloc(nsubs + 1, sizeof(Conn));
    char cmd[4096];
    for (int i = 0; i < nsubs; i++) {
        subs[i].fd = connect_to(port);
        subs[i].check_order = (i == 0);
        send_all(subs[i].fd, cmd, subscribe_cmd(cmd, "bench"));
        watch(subs[i].fd, i, EPOLLIN);
    }
    Conn *pub = &subs[nsubs];
    pub->fd = connect_to(port);
    size_t h = hello_cmd(cmd);
    if (h) send_all(pub->fd, cmd, h);
    watch(pub->fd, nsubs, EPOLLIN);

    /* Warm up: until every subscriber has a warm-up payload. */
    Progress p = progress("the warm-up");
    double next_warm = 0;
    for (;;) {
        long warm = 0;
        for (int i = 0; i < nsubs; i++) warm += subs[i].warm > 0;
        if (warm == nsubs) break;
        check(&p, warm);
        if (now_s() >= next_warm) {
            send_all(pub->fd, cmd, publish_cmd(cmd, "bench", "##", 0));
            next_warm = now_s() + 0.01;
        }
        int n = epoll_wait(ep, events, 1024, 5);
        for (int k = 0; k < n; k++) {
            Conn *c = &subs[events[k].data.u32];
            ssize_t r = read_some(c->fd, in);
            if (c != pub) scan(c, in, r, 0);
        }
    }
    /* Let the last warm-up payloads drain. */
    double settle = now_s() + 0.2;
    while (now_s() < settle) {
        int n = epoll_wait(ep, events, 1024, 10);
        for (int k = 0; k < n; k++) {
            Conn *c = &subs[events[k].data.u32];
            ssize_t r = read_some(c->fd, in);
            if (c != pub) scan(c, in, r, 0);
        }
    }

    static char batch[100 * 256];
    start_usage();
    long sent = 0;
    p = progress("the deliveries");
    for (;;) {
        long slowest = messages;
        for (int i = 0; i < nsubs; i++)
            if (subs[i].measured < slowest) slowest = subs[i].measured;
        if (slowest >= messages) break;
        if (order_error) fail("subscriber 0 missed or reordered a message");
        check(&p, slowest);
        long allowed = slowest + window < messages ? slowest + window : messages;
        if (sent < allowed) {
            size_t len = 0;
            long upto = sent + 100 < allowed ? sent + 100 : allowed;
            for (; sent < upto; sent++) len += publish_cmd(batch + len, "bench", "@@", sent);
            send_all(pub->fd, batch, len);
        }
        int n = epoll_wait(ep, events, 1024, sent < allowed ? 0 : 5);
        for (int k = 0; k < n; k++) {
            Conn *c = &subs[events[k].data.u32];
            ssize_t r;
            while ((r = read_some(c->fd, in)) > 0) {
                if (c != pub) scan(c, in, r, 50);
                if (r < READ_SIZE) break;
            }
        }
    }
    double elapsed = now_s() - began;
    if (order_error) fail("subscriber 0 got messages out of order");
    for (int i = 0; i < nsubs; i++)
        if (subs[i].measured != messages) fail("a subscriber got a wrong number of messages");
    printf("{\"deliveries_per_s\": %.1f", nsubs * (double)messages / elapsed);
    print_usage(elapsed);
    print_percentiles("", 0);
    printf("}\n");
    return 0;
}

/* ------------------------------------------------------------------- pairs */

/* Pair i is connections 2i (the pinger) and 2i+1 (the ponger). */
typedef struct {
    char ping_inbox[32], pong_inbox[32];
    uint64_t sent_at;
    long answered_warmups;
} Pair;

static Pair *pairs_;
static Conn *members;
static int npairs;
static long exchanges_;
static int flat_out, finished, *idle, nidle;

static void send_ping(int i) {
    char cmd[512];
    pairs_[i].sent_at = now_ns();
    send_all(members[2 * i].fd, cmd,
             publish_cmd(cmd, pairs_[i].pong_inbox, "@@", members[2 * i].measured));
}

/* What member M of pair I does with a read. */
static void on_member_read(int m, const char *data, size_t n) {
    int i = m / 2;
    Conn *c = &members[m];
    long got = scan(c, data, n, 0);
    char cmd[512 * 4];
    if (m % 2 == 1) {
        /* The ponger answers every measured message. */
        size_t len = 0;
        for (long k = 0; k < got; k++)
            len += publish_cmd(cmd + len, pairs_[i].ping_inbox, "@@", c->measured - got + k);
        if (len) send_all(c->fd, cmd, len);
        return;
    }
    for (long k = 0; k < got; k++) {
        sample((now_ns() - pairs_[i].sent_at) / 1e6);
        if (!flat_out) {
            idle[nidle++] = i;
        } else if (c->measured < exchanges_) {
            send_ping(i);
        } else {
            finished++;
        }
    }
}

static void pump_members(int timeout_ms) {
    int n = epoll_wait(ep, events, 1024, timeout_ms);
    for (int k = 0; k < n; k++) {
        int m = events[k].data.u32;
        ssize_t r;
        while ((r = read_some(members[m].fd, in)) > 0) {
            on_member_read(m, in, r);
            if (r < READ_SIZE) break;
        }
    }
}

static int pairs(int port, int channels, long exchanges, double reference, double paced_s) {
    static const double levels[] = {0.25, 0.5, 0.8};
    npairs = channels;
    exchanges_ = exchanges;
    pairs_ = calloc(channels, sizeof(Pair));
    members = calloc(2 * channels, sizeof(Conn));
    idle = calloc(channels, sizeof(int));
    char cmd[4096];
    int echoes = is("redis"); /* Redis sends a subscriber its own messages */
    for (int i = 0; i < channels; i++) {
        snprintf(pairs_[i].ping_inbox, 32, echoes ? "pair%d.a" : "pair%d", i);
        snprintf(pairs_[i].pong_inbox, 32, echoes ? "pair%d.b" : "pair%d", i);
        for (int r = 0; r < 2; r++) {
            Conn *c = &members[2 * i + r];
            c->fd = connect_to(port);
            send_all(c->fd, cmd, subscribe_cmd(cmd, r ? pairs_[i].pong_inbox : pairs_[i].ping_inbox));
            watch(c->fd, 2 * i + r, EPOLLIN);
        }
    }
    /* Warm up: every ponger answers warm-up messages; every pinger sends
     * them until one came back. */
    Progress p = progress("the warm-up");
    double next_warm = 0;
    for (;;) {
        long warm = 0;
        for (int i = 0; i < channels; i++) {
            Conn *pong = &members[2 * i + 1];
            for (; pairs_[i].answered_warmups < pong->warm; pairs_[i].answered_warmups++)
                send_all(pong->fd, cmd, publish_cmd(cmd, pairs_[i].ping_inbox, "##", 0));
            warm += members[2 * i].warm > 0;
        }
        if (warm == channels) break;
        check(&p, warm);
        if (now_s() >= next_warm) {
            for (int i = 0; i < channels; i++)
                if (!members[2 * i].warm)
                    send_all(members[2 * i].fd, cmd, publish_cmd(cmd, pairs_[i].pong_inbox, "##", 0));
            next_warm = now_s() + 0.05;
        }
        pump_members(5);
    }
    double settle = now_s() + 0.2;
    while (now_s() < settle) pump_members(10);

    start_usage();
    flat_out = 1;
    for (int i = 0; i < channels; i++) send_ping(i);
    p = progress("the exchanges");
    while (finished < channels) {
        long total = 0;
        for (int i = 0; i < channels; i++) total += members[2 * i].measured;
        check(&p, total);
        pump_members(5);
    }
    double elapsed = now_s() - began;
    for (int m = 0; m < 2 * channels; m++)
        if (members[m].measured != exchanges) fail("a member got a wrong number of messages");
    double rate = 2.0 * channels * exchanges / elapsed;
    printf("{\"messages_per_s\": %.1f", rate);
    print_usage(elapsed);
    print_percentiles("", 0);

    /* Paced: pings go out on a schedule, each from a pair with nothing in
     * flight (the loop polls without sleeping, to keep to the schedule). */
    flat_out = 0;
    for (int i = 0; i < channels; i++) idle[nidle++] = i;
    for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
        double target = levels[l] * (reference > 0 ? reference : rate);
        long from = nsamples, sent = 0;
        double start = now_s(), t;
        while ((t = now_s()) - start < paced_s) {
            long owed = (long)((t - start) * target / 2) - sent; /* a ping makes two messages */
            while (owed > 0 && nidle > 0) {
                send_ping(idle[--nidle]);
                sent++;
                owed--;
            }
            pump_members(0);
        }
        p = progress("the last paced pings");
        while (nidle < channels) {
            check(&p, nidle);
            pump_members(5);
        }
        int key = (int)(levels[l] * 100 + 0.5);
        printf(", \"paced%d_rate\": %.1f, \"paced%d_achieved\": %.1f", key, target, key,
               2.0 * sent / paced_s);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "paced%d_", key);
        print_percentiles(prefix, from);
    }
    printf("}\n");
    return 0;
}

/* ------------------------------------------------------------------- games */

static Conn *players;
static int nplayers, games_each;
static long closed_total; /* every player's games, counted when closed */

/* The value of "type" in a frame's JSON (compact, as soukets writes it). */
static int frame_is(const char *body, const char *type) {
    const char *t = strstr(body, "\"type\":\"");
    if (!t) return 0;
    t += 8;
    size_t n = strlen(type);
    return strncmp(t, type, n) == 0 && t[n] == '"';
}

static void on_frame(Conn *c, char *line) {
    char *semi = strchr(line, ';');
    if (!semi) fail("a line without a ';'");
    *semi = 0;
    const char *channel = line, *body = semi + 1;
    char cmd[256];
    if (frame_is(body, "welcome")) {
        c->welcomed = 1;
    } else if (frame_is(body, "round")) {
        c->moved_at = now_ns();
        send_all(c->fd, cmd, snprintf(cmd, sizeof cmd, "%s;{\"type\":\"move\",\"move\":\"rock\"}\n", channel));
    } else if (frame_is(body, "result")) {
        sample((now_ns() - c->moved_at) / 1e6);
        const char *moves = strstr(body, "\"moves\":{");
        int rocks = 0;
        for (const char *r = moves; r && (r = strstr(r, ":\"rock\"")); r++) rocks++;
        if (rocks != 2 || !strstr(body, "\"timed_out\":[]")) {
            fprintf(stderr, "loadgen: unexpected result %s\n", body);
            exit(1);
        }
    } else if (frame_is(body, "closed")) {
        /* (Everyone queues again until the games are all played: were each
         * to stop after its own share, the last could wait alone.) */
        c->played++;
        if (++closed_total < (long)nplayers * games_each)
            send_all(c->fd, ";{\"type\":\"queue\"}\n", 18);
    } else if (frame_is(body, "error")) {
        fprintf(stderr, "loadgen: error frame %s;%s\n", channel, body);
        exit(1);
    }
}

/* Split what C got into lines; hand each whole one to on_frame. */
static void on_player_read(Conn *c, const char *data, size_t n) {
    if (c->used + n + 1 > c->cap) {
        c->cap = (c->used + n + 1) * 2;
        c->line = realloc(c->line, c->cap);
    }
    memcpy(c->line + c->used, data, n);
    c->used += n;
    size_t start = 0;
    for (;;) {
        char *nl = memchr(c->line + start, '\n', c->used - start);
        if (!nl) break;
        *nl = 0;
        on_frame(c, c->line + start);
        start = nl - c->line + 1;
    }
    memmove(c->line, c->line + start, c->used - start);
    c->used -= start;
}

static void pump_players(int timeout_ms) {
    int n = epoll_wait(ep, events, 1024, timeout_ms);
    for (int k = 0; k < n; k++) {
        Conn *c = &players[events[k].data.u32];
        ssize_t r;
        while ((r = read_some(c->fd, in)) > 0) {
            on_player_read(c, in, r);
            if (r < READ_SIZE) break;
        }
    }
}

static int games(const char *ports, int count, int each) {
    int port_list[16], nports = 0;
    for (const char *p = ports; p && nports < 16; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        port_list[nports++] = atoi(p);
    nplayers = count;
    games_each = each;
    players = calloc(count, sizeof(Conn));
    for (int i = 0; i < count; i++) {
        players[i].fd = connect_to(port_list[i % nports]);
        watch(players[i].fd, i, EPOLLIN);
    }
    Progress p = progress("the welcomes");
    for (;;) {
        long welcomed = 0;
        for (int i = 0; i < count; i++) welcomed += players[i].welcomed;
        if (welcomed == count) break;
        check(&p, welcomed);
        pump_players(5);
    }
    start_usage();
    for (int i = 0; i < count; i++) send_all(players[i].fd, ";{\"type\":\"queue\"}\n", 18);
    p = progress("the games");
    while (closed_total < (long)count * each) {
        check(&p, closed_total);
        pump_players(5);
    }
    double elapsed = now_s() - began;
    printf("{\"games_per_s\": %.1f", (double)count * each / 2 / elapsed);
    print_usage(elapsed);
    print_percentiles("", 0);
    printf("}\n");
    return 0;
}

/* ------------------------------------------------------------------- storm */

static int storm(int port, int clients) {
    Conn *held = calloc(clients, sizeof(Conn));
    char hello[256];
    size_t hello_len = hello_cmd(hello);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    start_usage();
    uint64_t started = now_ns();
    for (int i = 0; i < clients; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) die("socket");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) die("connect");
        held[i].fd = fd;
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.u32 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl");
    }
    long greeted = 0;
    Progress p = progress("the greetings");
    while (greeted < clients) {
        check(&p, greeted);
        int n = epoll_wait(ep, events, 1024, 5);
        for (int k = 0; k < n; k++) {
            Conn *c = &held[events[k].data.u32];
            if ((events[k].events & EPOLLOUT) && !c->connected) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    errno = err;
                    die("connect");
                }
                c->connected = 1;
                if (hello_len) send_all(c->fd, hello, hello_len);
                struct epoll_event e = {.events = EPOLLIN, .data.u32 = events[k].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
            }
            if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (read_some(c->fd, in) > 0 && !c->greeted) {
                    c->greeted = 1;
                    c->greeted_at = now_ns();
                    sample((c->greeted_at - started) / 1e6);
                    greeted++;
                }
            }
        }
    }
    double elapsed = now_s() - began;
    double last = 0;
    for (int i = 0; i < clients; i++)
        if ((held[i].greeted_at - started) / 1e9 > last) last = (held[i].greeted_at - started) / 1e9;
    printf("{\"connections_per_s\": %.1f, \"last_greeted_s\": %.6f", clients / last, last);
    print_usage(elapsed);
    print_percentiles("", 0);
    printf("}\n");
    return 0;
}

/* -------------------------------------------------------------------- main */

static int usage(void) {
    fprintf(stderr,
            "usage: loadgen fanout PORT DIALECT SUBSCRIBERS MESSAGES WINDOW [PID...]\n"
            "       loadgen pairs PORT DIALECT CHANNELS EXCHANGES REFERENCE_RATE PACED_S [PID...]\n"
            "       loadgen games PORTS PLAYERS GAMES_EACH [PID...]\n"
            "       loadgen storm PORT DIALECT CLIENTS [PID...]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    samples = malloc(sizeof(double) * MAX_SAMPLES);
    ep = epoll_create1(0);
    const char *mode = argv[1];
    if (strcmp(mode, "fanout") == 0 && argc >= 7) {
        dialect = argv[3];
        server_pids = argv + 7, nserver_pids = argc - 7;
        return fanout(atoi(argv[2]), atoi(argv[4]), atol(argv[5]), atol(argv[6]));
    }
    if (strcmp(mode, "pairs") == 0 && argc >= 8) {
        dialect = argv[3];
        server_pids = argv + 8, nserver_pids = argc - 8;
        return pairs(atoi(argv[2]), atoi(argv[4]), atol(argv[5]), atof(argv[6]), atof(argv[7]));
    }
    if (strcmp(mode, "games") == 0 && argc >= 5) {
        dialect = "soukets";
        server_pids = argv + 5, nserver_pids = argc - 5;
        return games(argv[2], atoi(argv[3]), atoi(argv[4]));
    }
    if (strcmp(mode, "storm") == 0 && argc >= 5) {
        dialect = argv[3];
        server_pids = argv + 5, nserver_pids = argc - 5;
        return storm(atoi(argv[2]), atoi(argv[4]));
    }
    return usage();
}
