/*
 * artifacts_internal — what the watcher, importer, materializer and status
 * files share: one struct artifacts per node, the per-path knowledge (stat
 * cache, import status, what this node last wrote), and the entry points the
 * watcher thread (and the unit tests, which drive them without a thread)
 * call.
 *
 * Threads: the watcher thread owns everything here except `files`, which
 * the admin handler reads too: `mu` guards the files array and the strings
 * in it. Counters are atomics.
 */
#ifndef REFUGE_ARTIFACTS_INTERNAL_H
#define REFUGE_ARTIFACTS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "artifacts/artifacts.h"

enum art_mode { ART_MODE_NONE = 0, ART_MODE_IMPORTER = 1, ART_MODE_MATERIALIZER = 2 };
const char *artifacts_mode_name(int mode);

enum art_status { ART_OK = 0, ART_REJECTED = 1 };

#define ART_ERROR_MAX 512

/* What this node knows about one relative path. */
struct art_file {
    char path[ARTIFACT_PATH_MAX];
    /* stat cache: file_sha is the digest of the bytes seen with this stat */
    bool have_stat;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    char file_sha[ARTIFACT_SHA_HEX];
    /* importer */
    int status;                          /* enum art_status */
    char rejected_sha[ARTIFACT_SHA_HEX]; /* file digest that was rejected ("" none) */
    char last_error[ART_ERROR_MAX];
    bool retry;                          /* a store failure: try again soon */
    /* both modes: the digest this node last wrote or verified equal to its
     * row (drift = the file on disk differs from it) */
    char local_sha[ARTIFACT_SHA_HEX];
    bool present;                        /* seen by the current pass */
};

struct artifacts {
    struct node *n;
    char *dir;                           /* [artifacts] dir */
    /* watcher thread */
    pthread_t thread;
    bool thread_started;
    int inofd;                           /* inotify, -1 when unavailable */
    int wakefd;                          /* eventfd: stop, role change, applied */
    int wd_root, wd_sub[2];              /* watch descriptors (-1: none) */
    atomic_bool stop;
    atomic_bool applied;                 /* materialize now */
    atomic_bool role_changed;
    int mode;                            /* enum art_mode; written by the thread only */
    atomic_int mode_shown;               /* mode for status readers */
    /* per-path knowledge */
    pthread_mutex_t mu;
    struct art_file *files;
    size_t nfiles, cap;
    /* counters (also Prometheus metrics) */
    atomic_uint_fast64_t drift_total;
    atomic_uint_fast64_t errors_total;
    atomic_uint_fast64_t imported_total;
    atomic_uint_fast64_t materialized_total;
    int64_t retry_at_us;                 /* monotonic; 0 = none */
    size_t bad_rows_logged;              /* materializer: suspicious rows already logged */
    int64_t data_version;                /* materializer: PRAGMA data_version last seen */
    unsigned char table_fp[32];          /* ... and the digest of the (path, sha256) list */
    bool have_fp;
};

/* The instance of node n with the registry locked (NULL when none); the
 * pointer stays valid until artifacts_release(), which must always follow. */
struct artifacts *artifacts_acquire(struct node *n);
void artifacts_release(void);

/* Allocates the state for n (no thread, no inotify); the directory and its
 * subdirectories are created when missing. NULL with errno-style *rc. */
struct artifacts *artifacts_new(struct node *n, int *rc);
void artifacts_free(struct artifacts *a);

/* Looks a path up, creating its entry when create. Caller holds mu. */
struct art_file *artifacts_file(struct artifacts *a, const char *path, bool create);
/* Drops entries for which keep() is false. Caller holds mu. */
void artifacts_files_prune(struct artifacts *a, bool (*keep)(const struct art_file *f));

/*
 * Digest of DIR/path with the stat cache: reads and hashes the file only
 * when its (dev, ino, size, mtime, ctime) changed. When content is not NULL
 * the bytes are returned too (xmalloc'd; the file is then always read).
 * 0, -ENOENT (missing or not a regular file), -EFBIG (over
 * ARTIFACT_MAX_BYTES) or another -errno. Takes mu itself.
 */
int artifacts_file_digest(struct artifacts *a, const char *path, char sha[ARTIFACT_SHA_HEX],
                          char **content, size_t *len);

/* Importer (active): one full pass over the directory against the table.
 * reapply: also re-resolve artifacts that use ${region.KEY} and update their
 * tenant when the effective values differ (a node that just became active).
 * 0, or a negative code when the pass could not run (the next one retries). */
int artifacts_import_scan(struct artifacts *a, bool reapply);

/* Materializer (standby): one pass writing the table to the directory,
 * counting drift. 0 or negative (a write failure; the next pass retries). */
int artifacts_materialize(struct artifacts *a);

/* Materializer: has the artifacts table changed since the last call? One
 * PRAGMA data_version when nothing was committed; else the (path, sha256)
 * list is digested. 1 changed (also on the first call), 0 not, or -EIO. */
int artifacts_table_changed(struct artifacts *a);

/* Metrics families (registered once). */
void artifacts_metrics_init(void);
void artifacts_count_error(struct artifacts *a);
void artifacts_count_drift(struct artifacts *a);
void artifacts_count_imported(struct artifacts *a);
void artifacts_count_materialized(struct artifacts *a);

/* Records the stat and digest of DIR/path after this node wrote it (st NULL:
 * digest only, the stat cache is cleared). Takes mu itself. */
void artifacts_file_remember(struct artifacts *a, const char *path, const struct stat *st,
                             const char sha[ARTIFACT_SHA_HEX]);

/* fsync of a directory by path; 0 or -errno. */
int artifacts_fsync_dir(const char *dir);

#endif
