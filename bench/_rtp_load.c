/* The hot loop of bench/_rtp_load.py in C: K phones on one UDP socket, one PCMU frame each
 * every 20 ms, sent with sendmmsg and read back with recvmmsg (a few system calls a tick
 * instead of one per packet), counted per phone by the source port (the leg's port).
 *
 * Built by bench/_rtp_load.py with the machine's gcc into a temporary directory, never
 * committed as a binary. Usage: _rtp_load FD, FD being the bound, non-blocking socket the
 * Python side made. On stdin: the phone count, the legs' ports, the 160-byte payload in hex;
 * then "stop" ends the sending (stdout: "sent" and the count per phone, then "pacing" with
 * CPU %, ticks due, late, skipped); then "report" reads what is still in flight after 200 ms
 * (stdout: "received" and the count per phone). Same rules as the Python loop: a phone held
 * back sends the frames it missed, at most MAX_CATCH_UP ticks' worth, then skips ahead. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS 20000000LL
#define MAX_CATCH_UP 5
#define BATCH 256
#define HEADER 12
#define PAYLOAD 160

static int fd, count;
static struct sockaddr_in *targets;
static long *sent, *received;
static int phone_of[65536];
static unsigned char packet[HEADER + PAYLOAD];
static unsigned char buffers[BATCH][2048];

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static void drain(void) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in from[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = buffers[i];
            iov[i].iov_len = sizeof buffers[i];
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        int got = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0)
            return;
        for (int i = 0; i < got; i++) {
            int phone = phone_of[ntohs(from[i].sin_port)];
            if (phone >= 0)
                received[phone]++;
        }
    }
}

static void send_tick(uint32_t sequence) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov = {packet, sizeof packet};
    uint16_t seq = htons((uint16_t)sequence);
    uint32_t timestamp = htonl(sequence * 160u);
    memcpy(packet + 2, &seq, 2);
    memcpy(packet + 4, &timestamp, 4);
    for (int first = 0; first < count; first += BATCH) {
        int n = count - first < BATCH ? count - first : BATCH;
        for (int i = 0; i < n; i++) {
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_iov = &iov;
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &targets[first + i];
            msgs[i].msg_hdr.msg_namelen = sizeof targets[first + i];
        }
        int done = 0;
        while (done < n) {
            int r = sendmmsg(fd, msgs + done, n - done, 0);
            if (r < 0) { /* our own send buffer full: that phone's frame is not sent */
                done++;
                continue;
            }
            for (int i = done; i < done + r; i++)
                sent[first + i]++;
            done += r;
        }
    }
}

static int read_line(char *line, size_t size) {
    return fgets(line, (int)size, stdin) != NULL;
}

static void print_counts(const char *name, const long *counts) {
    printf("%s", name);
    for (int i = 0; i < count; i++)
        printf(" %ld", counts[i]);
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    fd = atoi(argv[1]);
    if (scanf("%d", &count) != 1 || count <= 0)
        return 2;
    targets = calloc(count, sizeof *targets);
    sent = calloc(count, sizeof *sent);
    received = calloc(count, sizeof *received);
    memset(phone_of, 0xff, sizeof phone_of);
    for (int i = 0; i < count; i++) {
        int port;
        if (scanf("%d", &port) != 1 || port <= 0 || port > 65535)
            return 2;
        targets[i].sin_family = AF_INET;
        targets[i].sin_port = htons((uint16_t)port);
        targets[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        phone_of[port] = i;
    }
    packet[0] = 0x80;
    packet[1] = 0; /* PCMU */
    uint32_t ssrc = htonl(0x7E1E7E1Eu);
    memcpy(packet + 8, &ssrc, 4);
    for (int i = 0; i < PAYLOAD; i++) {
        unsigned int byte;
        if (scanf("%2x", &byte) != 1)
            return 2;
        packet[HEADER + i] = (unsigned char)byte;
    }
    char line[64];
    if (!read_line(line, sizeof line)) /* the rest of the payload's line */
        return 2;
    long long due = now_ns(), started = due;
    double cpu = cpu_seconds();
    long ticks = 0, late = 0, skipped = 0;
    uint32_t sequence = 0;
    struct pollfd input = {STDIN_FILENO, POLLIN, 0};
    for (;;) {
        long long now = now_ns();
        long long behind = (now - due) / TICK_NS;
        if (behind > MAX_CATCH_UP) {
            due += behind * TICK_NS;
            ticks += behind;
            skipped += behind;
        }
        while (due <= now_ns()) {
            ticks++;
            late += now_ns() - due > TICK_NS;
            send_tick(sequence++);
            due += TICK_NS;
        }
        drain();
        long long wait = due - now_ns();
        int timeout = wait > 0 ? (int)((wait + 999999) / 1000000) : 0;
        if (poll(&input, 1, timeout) > 0)
            break; /* "stop" */
    }
    double spent = cpu_seconds() - cpu, wall = (now_ns() - started) / 1e9;
    if (!read_line(line, sizeof line))
        return 2;
    print_counts("sent", sent);
    printf("pacing %.3f %ld %ld %ld\n", 100 * spent / wall, ticks, late, skipped);
    fflush(stdout);
    if (!read_line(line, sizeof line)) /* "report": the node has stopped sending */
        return 2;
    struct timespec pause = {0, 200000000};
    nanosleep(&pause, NULL);
    drain();
    print_counts("received", received);
    return 0;
}
