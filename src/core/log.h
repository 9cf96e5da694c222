/*
 * log — JSON-lines logging: one object per line with time, level, request id
 * (thread-local, set by the HTTP layer), message and string fields.
 *
 *   log_info("listening", "addr", addr, "threads", log_i64(n), NULL);
 *   -> {"time":"2026-11-25T19:20:01.123456Z","level":"info","msg":"listening",
 *       "addr":"127.0.0.1:8080","threads":"4"}
 *
 * Fields are NULL-terminated (key, value) pairs of C strings; a NULL value
 * is written as null. With format = text the same data is printed as
 * `TIME LEVEL msg key=value ...` for humans. Thread-safe; each line is one
 * write(2) so lines never interleave.
 */
#ifndef REFUGE_CORE_LOG_H
#define REFUGE_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* path NULL or "-" = stderr. Returns 0 or -errno (file could not be opened). */
int log_init(enum log_level min, bool json, const char *path);
int log_reopen(void);                          /* SIGHUP: reopen the file */
void log_close(void);
int log_level_parse(const char *s, enum log_level *out);  /* 0 or -EINVAL */
bool log_enabled(enum log_level lvl);

void log_set_request_id(const char *id);       /* thread-local; NULL clears */
const char *log_request_id(void);

void log_write(enum log_level lvl, const char *msg, ...) __attribute__((sentinel));
#define log_debug(...) log_write(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LVL_ERROR, __VA_ARGS__)

/* Format helpers for field values: return pointers into a thread-local ring
 * of 16 buffers, valid until 16 further calls on the same thread. */
const char *log_i64(int64_t v);
const char *log_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
