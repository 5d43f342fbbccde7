/*
 * The native load generator for the fanout scenario: C, epoll, one thread,
 * so that the load generator is not what limits a server.  Built by
 * bench/run.py with the system's cc (no download).
 *
 *   loadgen fanout PORT DIALECT SUBSCRIBERS MESSAGES WINDOW [SERVER_PID...]
 *
 * DIALECT is soukets, floor, ceiling, redis or nats.  SUBSCRIBERS
 * connections subscribe to channel "bench"; a publisher connection sends
 * MESSAGES payloads as fast as it may while staying at most WINDOW ahead of
 * the slowest subscriber.  Each payload (100 bytes) carries "@@", its
 * sequence number and its send time; subscribers find them in the raw
 * stream (whatever the server wraps around them), count every delivery,
 * check that subscriber 0 gets every sequence number in order, and sample
 * latency.  Before the measured phase, warm-up payloads ("##") are sent
 * until every subscriber has one.  Prints one JSON object; given the
 * server's PIDs, with the CPU they used in the measured phase (as a share
 * of one core).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#define MAX_SAMPLES 2000000

typedef struct {
    int fd;
    long measured, warm, expect;
    int check_order;
    char carry[MARK_LEN];
    int carried;
} Sub;

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

static const char *dialect;
static int is(const char *name) { return strcmp(dialect, name) == 0; }

static size_t subscribe_cmd(char *out) {
    if (is("redis")) return sprintf(out, "HELLO 3\r\nSUBSCRIBE bench\r\n");
    if (is("nats"))
        return sprintf(out, "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n"
                            "SUB bench 1\r\n");
    return sprintf(out, "bench;{\"type\":\"subscribe\"}\n");
}

static size_t hello_cmd(char *out) {
    if (is("redis")) return sprintf(out, "HELLO 3\r\n");
    if (is("nats"))
        return sprintf(out, "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n");
    return 0;
}

/* One publish of a payload with mark (@@ or ##), sequence number and time. */
static size_t publish_cmd(char *out, const char *mark, long seq) {
    char payload[PAYLOAD + 1];
    int n = snprintf(payload, sizeof payload, "%s%09ld:%019llu", mark, seq,
                     (unsigned long long)now_ns());
    memset(payload + n, 'x', PAYLOAD - n);
    payload[PAYLOAD] = 0;
    if (is("redis")) return sprintf(out, "PUBLISH bench %s\r\n", payload);
    if (is("nats")) return sprintf(out, "PUB bench %d\r\n%s\r\n", PAYLOAD, payload);
    return sprintf(out, "bench;{\"type\":\"publish\",\"data\":\"%s\"}\n", payload);
}

static int measuring;
static double *samples;
static long nsamples;
static int order_error;

/* Find every mark in what a subscriber received (with the few bytes the
 * last read ended on). */
static void scan(Sub *s, const char *data, size_t n) {
    char buf[65536 + MARK_LEN];
    size_t len = 0;
    memcpy(buf, s->carry, s->carried);
    len = s->carried;
    memcpy(buf + len, data, n);
    len += n;
    size_t i = 0;
    while (i + 1 < len) {
        if (measuring) {
            /* (Only marks have an '@': jump from one to the next.) */
            char *at = memchr(buf + i, '@', len - i);
            if (at == NULL) { i = len; break; }
            i = at - buf;
            if (i + 1 >= len) break;
        }
        char c = buf[i];
        if ((c == '@' || c == '#') && buf[i + 1] == c) {
            if (i + MARK_LEN > len) break; /* incomplete: keep it */
            if (c == '#') {
                s->warm++;
            } else {
                long seq = strtol(buf + i + 2, NULL, 10);
                if (s->check_order) {
                    if (seq != s->expect) order_error = 1;
                    s->expect = seq + 1;
                }
                s->measured++;
                if (seq % 50 == 0 && nsamples < MAX_SAMPLES) {
                    unsigned long long sent = strtoull(buf + i + 12, NULL, 10);
                    samples[nsamples++] = (now_ns() - sent) / 1e6;
                }
            }
            i += MARK_LEN;
        } else {
            i++;
        }
    }
    size_t keep = len - i;
    if (keep > MARK_LEN - 1) keep = MARK_LEN - 1;
    memcpy(s->carry, buf + len - keep, keep);
    s->carried = keep;
}

/* User and system CPU seconds of processes PIDS, from /proc. */
static double server_cpu_s(char **pids, int n) {
    double total = 0;
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
    }
    return total;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 7 || strcmp(argv[1], "fanout") != 0) {
        fprintf(stderr, "usage: loadgen fanout PORT DIALECT SUBSCRIBERS MESSAGES WINDOW [SERVER_PID...]\n");
        return 2;
    }
    int port = atoi(argv[2]);
    dialect = argv[3];
    int nsubs = atoi(argv[4]);
    long messages = atol(argv[5]), window = atol(argv[6]);
    samples = malloc(sizeof(double) * MAX_SAMPLES);
    Sub *subs = calloc(nsubs, sizeof(Sub));
    int ep = epoll_create1(0);
    char cmd[4096];
    for (int i = 0; i < nsubs; i++) {
        subs[i].fd = connect_to(port);
        subs[i].check_order = (i == 0);
        send_all(subs[i].fd, cmd, subscribe_cmd(cmd));
        fcntl(subs[i].fd, F_SETFL, O_NONBLOCK);
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &e);
    }
    int pub = connect_to(port);
    size_t h = hello_cmd(cmd);
    if (h) send_all(pub, cmd, h);
    fcntl(pub, F_SETFL, O_NONBLOCK);
    struct epoll_event pe = {.events = EPOLLIN, .data.u32 = (uint32_t)nsubs};
    epoll_ctl(ep, EPOLL_CTL_ADD, pub, &pe);

    static char in[65536];
    struct epoll_event events[1024];
    /* Warm up: until every subscriber has a warm-up payload. */
    double deadline = now_s() + 60;
    double next_warm = 0;
    for (;;) {
        int warm = 1;
        for (int i = 0; i < nsubs; i++)
            if (!subs[i].warm) { warm = 0; break; }
        if (warm) break;
        if (now_s() > deadline) { fprintf(stderr, "loadgen: warm-up never ended\n"); return 1; }
        if (now_s() >= next_warm) {
            send_all(pub, cmd, publish_cmd(cmd, "##", 0));
            next_warm = now_s() + 0.01;
        }
        int n = epoll_wait(ep, events, 1024, 5);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            int fd = i == (uint32_t)nsubs ? pub : subs[i].fd;
            ssize_t r = read(fd, in, sizeof in);
            if (r == 0) { fprintf(stderr, "loadgen: a connection was closed\n"); return 1; }
            if (r > 0 && i != (uint32_t)nsubs) scan(&subs[i], in, r);
        }
    }
    /* Let the last warm-up payloads drain. */
    double settle = now_s() + 0.2;
    while (now_s() < settle) {
        int n = epoll_wait(ep, events, 1024, 10);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            int fd = i == (uint32_t)nsubs ? pub : subs[i].fd;
            ssize_t r = read(fd, in, sizeof in);
            if (r > 0 && i != (uint32_t)nsubs) scan(&subs[i], in, r);
        }
    }

    static char batch[100 * 256];
    measuring = 1;
    double started = now_s(), cpu0 = cpu_s(), server0 = server_cpu_s(argv + 7, argc - 7);
    long sent = 0;
    deadline = started + 120;
    long last_slowest = -1;
    double progressed = started;
    for (;;) {
        long slowest = messages;
        for (int i = 0; i < nsubs; i++)
            if (subs[i].measured < slowest) slowest = subs[i].measured;
        if (slowest >= messages) break;
        if (order_error) { fprintf(stderr, "loadgen: subscriber 0 missed or reordered a message\n"); return 1; }
        if (slowest != last_slowest) {
            last_slowest = slowest;
            progressed = now_s();
        } else if (now_s() - progressed > 5) {
            fprintf(stderr, "loadgen: deliveries stopped at %ld of %ld\n", slowest, messages);
            return 1;
        }
        if (now_s() > deadline) { fprintf(stderr, "loadgen: deliveries never ended\n"); return 1; }
        long allowed = slowest + window < messages ? slowest + window : messages;
        if (sent < allowed) {
            size_t len = 0;
            long upto = sent + 100 < allowed ? sent + 100 : allowed;
            for (; sent < upto; sent++) len += publish_cmd(batch + len, "@@", sent);
            send_all(pub, batch, len);
        }
        int n = epoll_wait(ep, events, 1024, sent < allowed ? 0 : 5);
        for (int k = 0; k < n; k++) {
            uint32_t i = events[k].data.u32;
            int fd = i == (uint32_t)nsubs ? pub : subs[i].fd;
            for (;;) {
                ssize_t r = read(fd, in, sizeof in);
                if (r == 0) { fprintf(stderr, "loadgen: a connection was closed\n"); return 1; }
                if (r < 0) break;
                if (i != (uint32_t)nsubs) scan(&subs[i], in, r);
                if (r < (ssize_t)sizeof in) break;
            }
        }
    }
    double elapsed = now_s() - started, cpu = cpu_s() - cpu0;
    double server = server_cpu_s(argv + 7, argc - 7) - server0;
    if (order_error) { fprintf(stderr, "loadgen: subscriber 0 got messages out of order\n"); return 1; }
    for (int i = 0; i < nsubs; i++)
        if (subs[i].measured != messages) {
            fprintf(stderr, "loadgen: a subscriber got %ld messages, not %ld\n", subs[i].measured, messages);
            return 1;
        }
    qsort(samples, nsamples, sizeof(double), cmp);
    double p50 = nsamples ? samples[nsamples / 2] : 0, p99 = nsamples ? samples[(long)(nsamples * 0.99)] : 0;
    printf("{\"deliveries_per_s\": %.1f, \"elapsed_s\": %.6f, \"loadgen_cpu\": %.4f, "
           "\"server_cpu\": %.4f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f}\n",
           nsubs * (double)messages / elapsed, elapsed, cpu / elapsed, server / elapsed, p50, p99,
           nsamples ? samples[nsamples - 1] : 0);
    return 0;
}
