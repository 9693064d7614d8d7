/* LD_PRELOAD shim for fault scenario S20: shift this process's wall clock (CLOCK_REALTIME,
 * gettimeofday, time) by CLOCKSHIFT_SECONDS; monotonic clocks and sleeps are left alone
 * (libfaketime 0.9.10 breaks Python 3.11's sleeps). Built by the test with cc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift(void) {
    static long seconds = 0;
    static int read = 0;
    if (!read) {
        const char *text = getenv("CLOCKSHIFT_SECONDS");
        seconds = text ? atol(text) : 0;
        read = 1;
    }
    return seconds;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *) = 0;
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) ts->tv_sec += shift();
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    static int (*real)(struct timeval *, void *) = 0;
    if (!real) real = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
    int rc = real(tv, tz);
    if (rc == 0 && tv) tv->tv_sec += shift();
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
