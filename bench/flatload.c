/*
 * flatload: the flat-out load generator of bench/cluster.py in C, so that on a 2-core machine the load takes a few
 * microseconds of CPU per frame instead of a Python client's 25 or so, and the servers get the cores.
 *
 * The Python load process opens and joins every room itself (the protocol's hello, lobby and admission, or PeerJS's
 * OPEN), stops reading the sockets, and hands them over already upgraded: file descriptors inherited by this
 * process, with a description of each room written to a file. This process then does what bench/signaling.py's
 * flat mode does: every room keeps one frame in flight; the peer that receives it answers with the next one
 * (offer, answer, candidate in turn, doctor and patient in turn), each carrying its send time (CLOCK_MONOTONIC, as
 * Python's perf_counter_ns) in "~ts=<ns>;". At t1 it stops sending, waits for the frames in flight, and writes the
 * latencies of the frames sent in [t0, t1] to the output file; it prints one line of counts.
 *
 * Client frames are masked with a zero key (allowed by RFC 6455, which only asks clients for a key; the server
 * unmasks all the same): the payload is written as it is. Only unfragmented text frames are expected; a ping is
 * answered; a close ends the run with an error.
 *
 * Usage: flatload ROOMS_FILE OUT_FILE T0_NS T1_NS
 * ROOMS_FILE, little-endian: u32 rooms; per room: i32 fd of side 0, i32 fd of side 1, then for side 0 and 1, for
 * kind 0 to 2: u32 length and bytes of the frame's head, u32 length and bytes of its tail (frame = head ts tail).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_NS 10000000000LL /* how long the frames in flight are waited for after t1 */
#define MAX_FRAME (1 << 20)

typedef struct {
    char *bytes;
    uint32_t len;
} Piece;

typedef struct Room Room;

typedef struct {
    int fd;
    int side;
    Room *room;
    char *in;
    size_t in_len, in_cap;
} Sock;

struct Room {
    Sock sock[2];
    Piece head[2][3], tail[2][3];
    uint64_t seq;
};

static int64_t sent = 0, received = 0, frames_in_window = 0, other = 0;
static int64_t *latencies = NULL;
static size_t latencies_len = 0, latencies_cap = 0;
static int64_t t0, t1;
static int stopping = 0;
static char *out_buf = NULL;
static size_t out_cap = 0;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "flatload: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *grow(void *p, size_t *cap, size_t need, size_t unit) {
    if (need <= *cap) return p;
    size_t cap2 = *cap ? *cap : 1024;
    while (cap2 < need) cap2 *= 2;
    p = realloc(p, cap2 * unit);
    if (!p) die("realloc");
    *cap = cap2;
    return p;
}

static void read_exact(FILE *f, void *p, size_t n) {
    if (fread(p, 1, n, f) != n) {
        fprintf(stderr, "flatload: short rooms file\n");
        exit(1);
    }
}

static Piece read_piece(FILE *f) {
    Piece piece;
    read_exact(f, &piece.len, 4);
    piece.bytes = malloc(piece.len + 1);
    if (!piece.bytes) die("malloc");
    read_exact(f, piece.bytes, piece.len);
    return piece;
}

/* Write all of buf, waiting for the socket when its buffer is full (rare: one frame in flight per room). */
static void write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, 1000);
        } else {
            die("write");
        }
    }
}

/* One masked (zero key) client frame of opcode `op` carrying payload [a, b]. */
static void send_frame(int fd, int op, const char *a, size_t alen, const char *b, size_t blen, const char *c,
                       size_t clen) {
    size_t len = alen + blen + clen, at = 0;
    out_buf = grow(out_buf, &out_cap, len + 14, 1);
    out_buf[at++] = (char)(0x80 | op);
    if (len < 126) {
        out_buf[at++] = (char)(0x80 | len);
    } else if (len < 65536) {
        out_buf[at++] = (char)(0x80 | 126);
        out_buf[at++] = (char)(len >> 8);
        out_buf[at++] = (char)len;
    } else {
        out_buf[at++] = (char)(0x80 | 127);
        for (int i = 7; i >= 0; i--) out_buf[at++] = (char)((uint64_t)len >> (8 * i));
    }
    memset(out_buf + at, 0, 4); /* the mask key */
    at += 4;
    memcpy(out_buf + at, a, alen);
    memcpy(out_buf + at + alen, b, blen);
    memcpy(out_buf + at + alen + blen, c, clen);
    write_all(fd, out_buf, at + len);
}

static void send_next(Room *room) {
    uint64_t seq = room->seq++;
    int side = (int)(seq & 1), kind = (int)(seq % 3);
    char ts[24];
    int tslen = snprintf(ts, sizeof ts, "%lld", (long long)now_ns());
    Piece *h = &room->head[side][kind], *t = &room->tail[side][kind];
    sent++;
    send_frame(room->sock[side].fd, 1, h->bytes, h->len, ts, (size_t)tslen, t->bytes, t->len);
}

static void on_text(Sock *s, const char *p, size_t len) {
    const char *mark = memmem(p, len, "~ts=", 4);
    if (!mark) {
        other++;
        if (len > 8 && memmem(p, len < 40 ? len : 40, "\"error\"", 7)) {
            fprintf(stderr, "flatload: an error frame: %.*s\n", (int)(len < 300 ? len : 300), p);
        }
        return;
    }
    int64_t at = now_ns(), ts = strtoll(mark + 4, NULL, 10);
    received++;
    if (at >= t0 && at <= t1) frames_in_window++; /* frames/s: those received in the window */
    if (ts >= t0 && ts <= t1) {                   /* latencies: those sent in it, as bench/signaling.py */
        latencies = grow(latencies, &latencies_cap, latencies_len + 1, sizeof *latencies);
        latencies[latencies_len++] = at - ts;
    }
    if (!stopping) send_next(s->room);
}

/* Every whole frame in the socket's buffer; the rest waits for more bytes. */
static void parse(Sock *s) {
    size_t at = 0;
    for (;;) {
        size_t left = s->in_len - at;
        if (left < 2) break;
        const unsigned char *p = (const unsigned char *)s->in + at;
        int op = p[0] & 0x0f;
        uint64_t len = p[1] & 0x7f;
        size_t head = 2;
        if (len == 126) {
            if (left < 4) break;
            len = ((uint64_t)p[2] << 8) | p[3];
            head = 4;
        } else if (len == 127) {
            if (left < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
            head = 10;
        }
        if (p[1] & 0x80) {
            fprintf(stderr, "flatload: a masked frame from the server\n");
            exit(1);
        }
        if (len > MAX_FRAME) {
            fprintf(stderr, "flatload: a frame of %llu bytes\n", (unsigned long long)len);
            exit(1);
        }
        if (left < head + len) break;
        const char *payload = (const char *)p + head;
        if (op == 1 || op == 2) {
            on_text(s, payload, (size_t)len);
        } else if (op == 9) {
            send_frame(s->fd, 10, payload, (size_t)len, "", 0, "", 0);
        } else if (op == 8) {
            fprintf(stderr, "flatload: the server closed a socket\n");
            exit(1);
        }
        at += head + (size_t)len;
    }
    memmove(s->in, s->in + at, s->in_len - at);
    s->in_len -= at;
}

static void readable(Sock *s) {
    for (;;) {
        s->in = grow(s->in, &s->in_cap, s->in_len + 65536, 1);
        ssize_t n = read(s->fd, s->in + s->in_len, s->in_cap - s->in_len);
        if (n > 0) {
            s->in_len += (size_t)n;
            parse(s);
            if ((size_t)n < 65536) return;
        } else if (n == 0) {
            fprintf(stderr, "flatload: a socket was closed\n");
            exit(1);
        } else if (errno == EAGAIN || errno == EINTR) {
            return;
        } else {
            die("read");
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: flatload ROOMS_FILE OUT_FILE T0_NS T1_NS\n");
        return 2;
    }
    t0 = strtoll(argv[3], NULL, 10);
    t1 = strtoll(argv[4], NULL, 10);
    FILE *f = fopen(argv[1], "rb");
    if (!f) die("open rooms file");
    uint32_t count;
    read_exact(f, &count, 4);
    Room *rooms = calloc(count ? count : 1, sizeof *rooms);
    int ep = epoll_create1(0);
    if (!rooms || ep < 0) die("setup");
    for (uint32_t r = 0; r < count; r++) {
        Room *room = &rooms[r];
        for (int side = 0; side < 2; side++) {
            int32_t fd;
            read_exact(f, &fd, 4);
            room->sock[side] = (Sock){.fd = fd, .side = side, .room = room};
        }
        for (int side = 0; side < 2; side++) {
            for (int kind = 0; kind < 3; kind++) {
                room->head[side][kind] = read_piece(f);
                room->tail[side][kind] = read_piece(f);
            }
        }
        for (int side = 0; side < 2; side++) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &room->sock[side]};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, room->sock[side].fd, &ev) < 0) die("epoll_ctl");
        }
    }
    fclose(f);
    for (uint32_t r = 0; r < count; r++) send_next(&rooms[r]);
    struct epoll_event events[256];
    int64_t drain_until = 0;
    for (;;) {
        int64_t now = now_ns();
        if (!stopping && now >= t1) {
            stopping = 1;
            drain_until = now + DRAIN_NS;
        }
        if (stopping && (received >= sent || now >= drain_until)) break;
        int timeout_ms = stopping ? 100 : (int)((t1 - now) / 1000000 + 1);
        int n = epoll_wait(ep, events, 256, timeout_ms);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) readable(events[i].data.ptr);
    }
    FILE *out = fopen(argv[2], "wb");
    if (!out) die("open out file");
    if (latencies_len && fwrite(latencies, sizeof *latencies, latencies_len, out) != latencies_len) die("write out");
    fclose(out);
    printf("%lld %lld %lld %lld\n", (long long)frames_in_window, (long long)(sent - received), (long long)sent,
           (long long)other);
    return 0;
}
