/*
 * bench — POST /bench/write inserts one row through the writer thread, with
 * the HTTP connection suspended until its group commit completes. This is
 * the shape of every real write (token issuance, SCIM), without the domain
 * work, so bench/http.sh can show group commit at work. Compiled to nothing
 * unless REFUGE_BENCH is defined: production nodes do not serve it.
 */
#include "node/bench.h"

#ifdef REFUGE_BENCH
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>

#include "core/rand.h"
#include "core/timeutil.h"

struct bench_job {
    struct http_request *req;
    char id[48];
};

static atomic_int table_ready;

static int write_row(struct db *db, void *arg)
{
    struct bench_job *j = arg;
    if (!atomic_load(&table_ready)) {
        int rc = db_exec(db, "CREATE TABLE IF NOT EXISTS bench_writes ("
                             "id TEXT PRIMARY KEY NOT NULL, at INTEGER NOT NULL)");
        if (rc < 0)
            return rc;
        atomic_store(&table_ready, 1);
    }
    struct db_stmt *st = db_prepare(db, "INSERT INTO bench_writes(id, at) VALUES ($1, $2)");
    if (!st)
        return DB_ERR;
    db_bind_text(st, 1, j->id, -1);
    db_bind_int64(st, 2, time_wall_us());
    int rc = db_step(st);
    db_done(st);
    return rc < 0 ? rc : 0;
}

static void write_done(void *arg, int rc)
{
    struct bench_job *j = arg;
    if (rc == 0)
        http_respond_json(j->req, 201, json_pack("{s:s}", "id", j->id));
    else
        http_respond_error(j->req, 500, "server_error", "write failed");
    http_resume(j->req);
}

static enum http_result bench_write(struct http_request *req)
{
    struct node *n = req->route_data;
    struct bench_job *j = arena_alloc(&req->arena, sizeof(*j));
    j->req = req;
    rand_token(j->id, 24);
    int rc = store_submit(n->store, write_row, write_done, j);
    if (rc != 0) {
        http_respond_error(req, 503, "temporarily_unavailable",
                           rc == -EAGAIN ? "write queue full" : "store closed");
        return HTTP_DONE;
    }
    return HTTP_SUSPEND;
}

size_t bench_routes(struct node *n, struct http_route *out, size_t max)
{
    if (max < 1)
        return 0;
    out[0] = (struct http_route){ "POST", "/bench/write", bench_write, 0, "bench_write", n };
    return 1;
}
#else
size_t bench_routes(struct node *n, struct http_route *out, size_t max)
{
    (void)n, (void)out, (void)max;
    return 0;
}
#endif
