// What a wake-up costs when many processes share few CPUs, against the same tasks as
// threads: the million-user demo's pattern without its TCP or its protocol.
//
// N pairs. A ticker sleeps to the next TICK_US on a grid every ticker shares, reads its
// server's last echo without waiting, touches PAGES pages of a table and writes one
// byte to its server; the server wakes on the byte, touches PAGES pages and echoes it.
// Each round trip is two wake-ups, one per task, as a request is at a million users and
// 10 000 shakes/s (one per 5 ms tick per process). The table stands for code and data
// every task uses: read-only after start, 4 KB pages, shared by every task (after fork,
// the same physical pages), so only the tasks' address spaces differ between layouts.
//
//   procs   every ticker and every server a process of its own (2N processes)
//   two     the tickers threads of one process, the servers threads of another
//   threads all 2N tasks threads of one process
//
// Run it under `perf stat -e task-clock` and divide by the round trips, N * SECS *
// 1e6 / TICK_US: CPU per round trip, both wake-ups and the four system calls.
//
//   gcc -O2 -pthread -o wakes wakes.c
//   perf stat -e task-clock ./wakes procs|two|threads N TICK_US SECS PAGES
//
// Unix stream socket pairs; everything stops by itself after SECS.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TABLE_PAGES 512
#define MAX_PAIRS 500

static int pairs, tick_us, secs, pages;
static volatile unsigned char *table;
static volatile unsigned long sink;
static int fds[MAX_PAIRS][2];

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

// Reads one byte from each of `pages` pages of the table, a different walk per task.
static void touch(unsigned seed) {
    unsigned long s = 0;
    for (int i = 0; i < pages; i++)
        s += table[((i * 7919u + seed) % TABLE_PAGES) * 4096];
    sink += s;
}

static void *ticker(void *arg) {
    int i = (int)(long)arg, fd = fds[i][0];
    long long tick = tick_us * 1000LL, end = now_ns() + secs * 1000000000LL;
    long long t = now_ns();
    char b = 1, r[64];
    for (t = t - t % tick + tick; t < end; t += tick) {
        struct timespec ts = {t / 1000000000LL, t % 1000000000LL};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        (void)!recv(fd, r, sizeof r, MSG_DONTWAIT);
        touch(i);
        (void)!send(fd, &b, 1, 0);
    }
    shutdown(fd, SHUT_WR);
    return NULL;
}

static void *server(void *arg) {
    int i = (int)(long)arg, fd = fds[i][1];
    char r[64];
    for (;;) {
        ssize_t n = recv(fd, r, sizeof r, 0);
        if (n <= 0)
            break;
        touch(i + MAX_PAIRS);
        (void)!send(fd, r, n, 0);
    }
    return NULL;
}

// Runs `body` for pairs 0..pairs-1 as threads of this process and waits for them.
static void as_threads(void *(*body)(void *)) {
    pthread_t t[MAX_PAIRS];
    for (int i = 0; i < pairs; i++)
        pthread_create(&t[i], NULL, body, (void *)(long)i);
    for (int i = 0; i < pairs; i++)
        pthread_join(t[i], NULL);
}

static void *tickers(void *unused) { (void)unused; as_threads(ticker); return NULL; }

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: wakes procs|two|threads N TICK_US SECS PAGES\n");
        return 2;
    }
    pairs = atoi(argv[2]);
    tick_us = atoi(argv[3]);
    secs = atoi(argv[4]);
    pages = atoi(argv[5]);
    if (pairs < 1 || pairs > MAX_PAIRS || tick_us < 1 || secs < 1 || pages < 0) {
        fprintf(stderr, "wakes: N in 1..%d, TICK_US and SECS at least 1, PAGES 0 or more\n", MAX_PAIRS);
        return 2;
    }
    table = mmap(NULL, TABLE_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    // 4 KB pages, as a program's code and heap mostly are: one huge page would hide
    // what the address spaces cost.
    madvise((void *)table, TABLE_PAGES * 4096, MADV_NOHUGEPAGE);
    for (int p = 0; p < TABLE_PAGES; p++)
        table[p * 4096] = (unsigned char)p;
    for (int i = 0; i < pairs; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds[i]) != 0) {
            perror("socketpair");
            return 1;
        }
    if (!strcmp(argv[1], "threads")) {
        pthread_t t;
        pthread_create(&t, NULL, tickers, NULL);
        as_threads(server);
        pthread_join(t, NULL);
    } else if (!strcmp(argv[1], "two")) {
        if (fork() == 0) {
            as_threads(server);
            _exit(0);
        }
        as_threads(ticker);
        while (wait(NULL) > 0) {
        }
    } else if (!strcmp(argv[1], "procs")) {
        for (int i = 0; i < pairs; i++) {
            if (fork() == 0) {
                ticker((void *)(long)i);
                _exit(0);
            }
            if (fork() == 0) {
                server((void *)(long)i);
                _exit(0);
            }
        }
        while (wait(NULL) > 0) {
        }
    } else {
        fprintf(stderr, "wakes: the layout is procs, two or threads, not %s\n", argv[1]);
        return 2;
    }
    return 0;
}
