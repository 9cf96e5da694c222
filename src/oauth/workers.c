/*
 * workers — two threads for CPU-heavy request work (argon2id password
 * verification, ~50 ms each). An HTTP worker thread serves many connections,
 * so it hands such work here and suspends the connection (DESIGN.md §6);
 * the job answers and resumes the request itself.
 *
 * Life cycle: the pool starts on the first submit. oauth_workers_stop()
 * (called from oauth_purge_stop at shutdown) lets the queued jobs run, joins
 * the threads, and makes later submits fail with -ESHUTDOWN so that the
 * handler answers 503 at once instead of restarting threads during
 * shutdown; oauth_workers_rearm() (from oauth_purge_start) allows a restart.
 * The queue is bounded: when full, submit fails with -EAGAIN (a 503 for the
 * client rather than unbounded memory under a password-guessing flood).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/xmalloc.h"
#include "oauth/oauth_internal.h"

#define NTHREADS 2
#define QUEUE_MAX 1024

struct job {
    struct job *next;
    void (*fn)(void *arg);
    void *arg;
};

enum pool_state { POOL_IDLE, POOL_RUNNING, POOL_STOPPED };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static enum pool_state state = POOL_IDLE;
static bool stopping;
static struct job *head, **tail = &head;
static size_t queued;
static pthread_t threads[NTHREADS];

static void *worker_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!head && !stopping)
            pthread_cond_wait(&cond, &lock);
        if (!head)
            break;           /* stopping and drained */
        struct job *j = head;
        head = j->next;
        if (!head)
            tail = &head;
        queued--;
        pthread_mutex_unlock(&lock);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int oauth_workers_submit(void (*fn)(void *arg), void *arg)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (state == POOL_STOPPED) {
        rc = -ESHUTDOWN;
        goto out;
    }
    if (state == POOL_IDLE) {
        stopping = false;
        for (int i = 0; i < NTHREADS; i++)
            if (pthread_create(&threads[i], NULL, worker_main, NULL) != 0)
                abort();     /* thread creation failing is as fatal as OOM here */
        state = POOL_RUNNING;
    }
    if (queued >= QUEUE_MAX) {
        rc = -EAGAIN;
        goto out;
    }
    struct job *j = xmalloc(sizeof(*j));
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    *tail = j;
    tail = &j->next;
    queued++;
    pthread_cond_signal(&cond);
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

void oauth_workers_stop(void)
{
    pthread_mutex_lock(&lock);
    bool running = state == POOL_RUNNING;
    state = POOL_STOPPED;
    stopping = true;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    if (running)
        for (int i = 0; i < NTHREADS; i++)
            pthread_join(threads[i], NULL);
}

void oauth_workers_rearm(void)
{
    pthread_mutex_lock(&lock);
    if (state == POOL_STOPPED)
        state = POOL_IDLE;
    pthread_mutex_unlock(&lock);
}
