/*
 * Unit tests for core/log: every line is one valid JSON object with the
 * documented fields, escaping cannot break a line, levels filter, the text
 * format, reopen after rotation, truncation, and no interleaving across threads.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/log.h"

static char tmpdir[512];
static char logpath[600];

static int setup(void **state)
{
    const char *base = getenv("REFUGE_TEST_TMP");

    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(tmpdir, sizeof tmpdir, "%s/test_core_log.XXXXXX", base);
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(logpath, sizeof logpath, "%s/refuge.log", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    char p[700];

    log_close();
    unlink(logpath);
    snprintf(p, sizeof p, "%s.1", logpath);
    unlink(p);
    rmdir(tmpdir);
    return 0;
}

/* Starts a fresh log file for one test. */
static void fresh(enum log_level lvl, bool json)
{
    unlink(logpath);
    assert_int_equal(log_init(lvl, json, logpath), 0);
}

/* Reads the whole file; caller frees. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Parses line number idx (0-based) of the file as JSON; caller decrefs. */
static json_t *line_json(const char *text, size_t idx)
{
    const char *p = text, *nl;
    json_error_t err;
    json_t *j;

    while (idx-- > 0) {
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    nl = strchr(p, '\n');
    assert_non_null(nl);
    j = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, &err);
    if (!j)
        fail_msg("line %zu not JSON: %s: %.*s", idx, err.text, (int)(nl - p), p);
    assert_true(json_is_object(j));
    return j;
}

static const char *get(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_json_line(void **state)
{
    char *text;
    json_t *j;
    const char *t;

    fresh(LOG_LVL_INFO, true);
    log_info("listening", "addr", "127.0.0.1:8080", "threads", log_i64(4), NULL);
    text = slurp(logpath);
    assert_int_equal(count_lines(text), 1);
    /* key order as documented */
    assert_true(strncmp(text, "{\"time\":\"", 9) == 0);
    assert_non_null(strstr(text, "\",\"level\":\"info\",\"msg\":\"listening\","
                                 "\"addr\":\"127.0.0.1:8080\",\"threads\":\"4\"}\n"));
    j = line_json(text, 0);
    assert_int_equal(json_object_size(j), 5);
    assert_string_equal(get(j, "level"), "info");
    assert_string_equal(get(j, "msg"), "listening");
    assert_string_equal(get(j, "addr"), "127.0.0.1:8080");
    assert_string_equal(get(j, "threads"), "4");
    assert_null(json_object_get(j, "request_id"));
    /* time: RFC 3339 UTC with microseconds */
    t = get(j, "time");
    assert_non_null(t);
    assert_int_equal(strlen(t), 27);
    assert_int_equal(t[4], '-');
    assert_int_equal(t[10], 'T');
    assert_int_equal(t[19], '.');
    assert_int_equal(t[26], 'Z');
    assert_true(strncmp(t, "20", 2) == 0);
    json_decref(j);
    free(text);
}

static void test_request_id(void **state)
{
    char *text;
    json_t *j;
    char longid[300];

    fresh(LOG_LVL_DEBUG, true);
    assert_null(log_request_id());
    log_set_request_id("req-abc-123");
    assert_string_equal(log_request_id(), "req-abc-123");
    log_debug("with id", NULL);
    log_set_request_id(NULL);
    assert_null(log_request_id());
    log_debug("without id", NULL);
    memset(longid, 'r', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    log_set_request_id(longid);
    assert_true(strlen(log_request_id()) < 200);   /* bounded copy */
    log_warn("long id", NULL);
    log_set_request_id("x\"y\n");
    log_error("odd id", NULL);
    log_set_request_id(NULL);

    text = slurp(logpath);
    assert_int_equal(count_lines(text), 4);
    j = line_json(text, 0);
    assert_string_equal(get(j, "request_id"), "req-abc-123");
    assert_string_equal(get(j, "level"), "debug");
    json_decref(j);
    j = line_json(text, 1);
    assert_null(json_object_get(j, "request_id"));
    json_decref(j);
    j = line_json(text, 2);
    assert_string_equal(get(j, "level"), "warn");
    assert_true(strlen(get(j, "request_id")) >= 64);
    json_decref(j);
    j = line_json(text, 3);
    assert_string_equal(get(j, "request_id"), "x\"y\n");
    assert_string_equal(get(j, "level"), "error");
    json_decref(j);
    free(text);
}

static void *other_thread(void *arg)
{
    /* the request id is per thread */
    *(const char **)arg = log_request_id();
    log_set_request_id("thread-2");
    log_info("from thread", NULL);
    return NULL;
}

static void test_request_id_thread_local(void **state)
{
    pthread_t th;
    const char *seen = "unset";
    char *text;
    json_t *j;

    fresh(LOG_LVL_INFO, true);
    log_set_request_id("main");
    assert_int_equal(pthread_create(&th, NULL, other_thread, &seen), 0);
    pthread_join(th, NULL);
    assert_null(seen);
    assert_string_equal(log_request_id(), "main");
    log_info("from main", NULL);
    log_set_request_id(NULL);
    text = slurp(logpath);
    j = line_json(text, 0);
    assert_string_equal(get(j, "request_id"), "thread-2");
    json_decref(j);
    j = line_json(text, 1);
    assert_string_equal(get(j, "request_id"), "main");
    json_decref(j);
    free(text);
}

static void test_escaping(void **state)
{
    const char *nasty = "quote\" back\\ nl\n cr\r tab\t ctl\x01 del\x7f";
    const char *key = "k\"ey\n";
    char *text;
    json_t *j;

    fresh(LOG_LVL_INFO, true);
    log_info("m\"sg\n{", key, nasty, "nullval", NULL, "utf8", "caf\xc3\xa9",
             "binary", "a\xff\xfe" "b", NULL);
    text = slurp(logpath);
    assert_int_equal(count_lines(text), 1);     /* the \n in values did not split it */
    j = line_json(text, 0);
    assert_string_equal(get(j, "msg"), "m\"sg\n{");
    assert_string_equal(get(j, key), nasty);
    assert_true(json_is_null(json_object_get(j, "nullval")));
    assert_string_equal(get(j, "utf8"), "caf\xc3\xa9");
    assert_string_equal(get(j, "binary"), "a\xef\xbf\xbd\xef\xbf\xbd" "b");  /* U+FFFD */
    json_decref(j);
    free(text);
}

static void test_levels(void **state)
{
    enum log_level l;
    char *text;
    json_t *j;

    fresh(LOG_LVL_WARN, true);
    assert_false(log_enabled(LOG_LVL_DEBUG));
    assert_false(log_enabled(LOG_LVL_INFO));
    assert_true(log_enabled(LOG_LVL_WARN));
    assert_true(log_enabled(LOG_LVL_ERROR));
    log_debug("d", NULL);
    log_info("i", NULL);
    log_warn("w", NULL);
    log_error("e", NULL);
    text = slurp(logpath);
    assert_int_equal(count_lines(text), 2);
    j = line_json(text, 0);
    assert_string_equal(get(j, "msg"), "w");
    json_decref(j);
    j = line_json(text, 1);
    assert_string_equal(get(j, "msg"), "e");
    json_decref(j);
    free(text);

    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_LVL_DEBUG);
    assert_int_equal(log_level_parse("INFO", &l), 0);
    assert_int_equal(l, LOG_LVL_INFO);
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_LVL_WARN);
    assert_int_equal(log_level_parse("warning", &l), 0);
    assert_int_equal(l, LOG_LVL_WARN);
    assert_int_equal(log_level_parse("error", &l), 0);
    assert_int_equal(l, LOG_LVL_ERROR);
    l = LOG_LVL_INFO;
    assert_int_equal(log_level_parse("verbose", &l), -EINVAL);
    assert_int_equal(log_level_parse("", &l), -EINVAL);
    assert_int_equal(log_level_parse(NULL, &l), -EINVAL);
    assert_int_equal(l, LOG_LVL_INFO);
}

static void test_text_format(void **state)
{
    char *text;

    fresh(LOG_LVL_INFO, false);
    log_set_request_id("r1");
    log_info("started", "addr", "127.0.0.1:8080", "note", "two words", "nl", "a\nb",
             "empty", "", "none", NULL, NULL);
    log_set_request_id(NULL);
    text = slurp(logpath);
    assert_int_equal(count_lines(text), 1);
    /* TIME LEVEL msg key=value ... */
    assert_int_equal(text[4], '-');
    assert_int_equal(text[26], 'Z');
    assert_string_equal(text + 27,
        " INFO started request_id=r1 addr=127.0.0.1:8080 note=\"two words\" "
        "nl=\"a\\nb\" empty=\"\" none=null\n");
    free(text);
}

static void test_reopen(void **state)
{
    char rotated[700];
    char *text;

    fresh(LOG_LVL_INFO, true);
    log_info("before", NULL);
    snprintf(rotated, sizeof rotated, "%s.1", logpath);
    assert_int_equal(rename(logpath, rotated), 0);
    log_info("still old", NULL);        /* goes to the renamed file */
    assert_int_equal(log_reopen(), 0);
    log_info("after", NULL);
    text = slurp(rotated);
    assert_int_equal(count_lines(text), 2);
    assert_non_null(strstr(text, "\"before\""));
    assert_non_null(strstr(text, "\"still old\""));
    free(text);
    text = slurp(logpath);
    assert_int_equal(count_lines(text), 1);
    assert_non_null(strstr(text, "\"msg\":\"after\""));
    free(text);
    unlink(rotated);

    /* a path that cannot be opened is an error and leaves logging as it was */
    assert_int_equal(log_init(LOG_LVL_INFO, true, "/nonexistent-dir/x/y.log"), -ENOENT);
    log_info("kept", NULL);
    text = slurp(logpath);
    assert_non_null(strstr(text, "\"msg\":\"kept\""));
    free(text);
    /* stderr needs no reopen */
    assert_int_equal(log_init(LOG_LVL_INFO, true, "-"), 0);
    assert_int_equal(log_reopen(), 0);
    assert_int_equal(log_init(LOG_LVL_INFO, true, NULL), 0);
}

static void test_ring(void **state)
{
    const char *p[16];
    char want[32];
    int i;

    for (i = 0; i < 16; i++)
        p[i] = i % 2 ? log_i64(INT64_MIN + i) : log_fmt("v%d-%s", i, "x");
    /* all 16 stay valid and distinct */
    for (i = 0; i < 16; i++) {
        if (i % 2)
            snprintf(want, sizeof want, "%lld", (long long)(INT64_MIN + i));
        else
            snprintf(want, sizeof want, "v%d-x", i);
        assert_string_equal(p[i], want);
    }
    assert_string_equal(log_i64(0), "0");
    assert_string_equal(log_i64(-42), "-42");
    assert_string_equal(log_i64(INT64_MAX), "9223372036854775807");
    /* a long format result is cut, not overrun */
    {
        char big[2000];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        assert_true(strlen(log_fmt("%s", big)) < sizeof big - 1);
    }
}

static void test_truncation(void **state)
{
    size_t n = 10000;
    char *big = malloc(n + 1);
    char *ctl = malloc(n + 1);
    char *text;
    json_t *j;

    memset(big, 'v', n);
    big[n] = '\0';
    memset(ctl, '\x01', n);     /* escapes to six bytes each */
    ctl[n] = '\0';
    fresh(LOG_LVL_INFO, true);

    /* one long value: cut to 4096 bytes, line marked */
    log_info("long", "a", big, "after", "kept", NULL);
    /* many long values: the line stays bounded, later fields are dropped */
    log_info("huge", "a", big, "b", big, "c", big, "d", big, "e", big, "f", big,
             "g", big, "h", big, "i", big, "j", big, NULL);
    /* a worst-case message still yields a complete line */
    log_set_request_id(ctl);
    log_info(ctl, "x", ctl, NULL);
    log_set_request_id(NULL);
    /* exactly 4096 bytes is not truncated */
    big[4096] = '\0';
    log_info("fits", "a", big, NULL);

    text = slurp(logpath);
    assert_int_equal(count_lines(text), 4);

    j = line_json(text, 0);
    assert_int_equal(strlen(get(j, "a")), 4096);
    assert_string_equal(get(j, "after"), "kept");
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);

    j = line_json(text, 1);
    assert_string_equal(get(j, "msg"), "huge");
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_non_null(get(j, "a"));
    assert_null(json_object_get(j, "j"));   /* later fields dropped */
    json_decref(j);

    j = line_json(text, 2);
    assert_int_equal(strlen(get(j, "msg")), 4096);
    assert_true(strlen(get(j, "request_id")) >= 64);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);

    j = line_json(text, 3);
    assert_int_equal(strlen(get(j, "a")), 4096);
    assert_null(json_object_get(j, "truncated"));
    json_decref(j);

    /* no line is longer than the documented cap */
    {
        const char *p = text, *nl;
        while ((nl = strchr(p, '\n')) != NULL) {
            assert_true((size_t)(nl - p) + 1 <= 32768);
            p = nl + 1;
        }
    }
    free(text);
    free(big);
    free(ctl);
}

#define NTHREADS 4
#define NLINES 300

static void *writer(void *arg)
{
    long id = (long)arg;
    char pad[600];
    int i;

    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (i = 0; i < NLINES; i++)
        log_info("concurrent", "thread", log_i64(id), "i", log_i64(i), "pad", pad, NULL);
    return NULL;
}

static void test_threads_no_interleave(void **state)
{
    pthread_t th[NTHREADS];
    int seen[NTHREADS] = { 0 };
    char *text;
    long t;
    size_t i;

    fresh(LOG_LVL_INFO, true);
    for (t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, writer, (void *)t), 0);
    for (t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    text = slurp(logpath);
    assert_int_equal(count_lines(text), NTHREADS * NLINES);
    for (i = 0; i < NTHREADS * NLINES; i++) {
        json_t *j = line_json(text, i);
        int tid = atoi(get(j, "thread"));
        assert_true(tid >= 0 && tid < NTHREADS);
        assert_int_equal(atoi(get(j, "i")), seen[tid]);    /* per-thread order kept */
        seen[tid]++;
        assert_int_equal(strlen(get(j, "pad")), 599);
        json_decref(j);
    }
    free(text);
}

static void test_errno_preserved(void **state)
{
    fresh(LOG_LVL_INFO, true);
    errno = EAGAIN;
    log_info("keeps errno", NULL);
    assert_int_equal(errno, EAGAIN);
    errno = EPIPE;
    log_debug("filtered", NULL);
    assert_int_equal(errno, EPIPE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_line),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_request_id_thread_local),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_ring),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_threads_no_interleave),
        cmocka_unit_test(test_errno_preserved),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
