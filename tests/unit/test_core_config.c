/*
 * Tests for core/config: every value type good and bad, every error message
 * checked verbatim with its file:line:key, the INI syntax rules (comments,
 * '=' inside values, sections), the limits, defaults and ownership.
 */
#include <errno.h>
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

#include "core/config.h"

struct conf {
    char *name;
    char *data_dir;
    int role;
    char *listen;
    char *peer;
    char *public_url;
    int64_t threads;
    int64_t max_body;
    int64_t offset;
    int mode;
    int64_t max_lag_ms;
    int64_t timeout_ms;
    bool sessions;
    char *label;
    struct cfg_kvlist region;
};

static const char *const roles[] = { "active", "standby", NULL };
static const char *const modes[] = { "async", "remote_write", "remote_apply", NULL };

#define OFF(f) offsetof(struct conf, f)

static const struct cfg_key keys[] = {
    { "node", "name", CFG_STRING, OFF(name), NULL, 1, 32, NULL, true, "node name" },
    { "node", "data_dir", CFG_PATH, OFF(data_dir), "/var/lib/refuge", 0, 0, NULL, false, "" },
    { "node", "initial_role", CFG_ENUM, OFF(role), "standby", 0, 0, roles, false, "" },
    { "http", "listen", CFG_LISTEN, OFF(listen), "127.0.0.1:8080", 1, 0, NULL, false, "" },
    { "http", "public_url", CFG_URL, OFF(public_url), NULL, 0, 0, NULL, false, "" },
    { "http", "threads", CFG_INT, OFF(threads), "4", 1, 256, NULL, false, "" },
    { "http", "max_body_bytes", CFG_SIZE, OFF(max_body), "1M", 1024, 64 << 20, NULL, false, "" },
    { "http", "offset", CFG_INT, OFF(offset), NULL, 0, 0, NULL, false, "unbounded" },
    { "replication", "peer", CFG_LISTEN, OFF(peer), NULL, 0, 0, NULL, false, "" },
    { "replication", "mode", CFG_ENUM, OFF(mode), "async", 0, 0, modes, false, "" },
    { "replication", "max_lag_ms", CFG_DURATION, OFF(max_lag_ms), "5s", 0, 3600000, NULL, false, "" },
    { "replication", "timeout", CFG_DURATION, OFF(timeout_ms), NULL, 0, 0, NULL, false, "" },
    { "replication", "replicate_sessions", CFG_BOOL, OFF(sessions), "false", 0, 0, NULL, false, "" },
    { "replication", "label", CFG_STRING, OFF(label), "default-label", 0, 0, NULL, false, "" },
    { "region", NULL, CFG_FREE, OFF(region), NULL, 0, 0, NULL, false, "free keys" },
};

static const struct cfg_schema schema = { keys, sizeof keys / sizeof keys[0] };

#define NODE "[node]\nname = n1\n"

/* Loads text; asserts success. Caller cfg_free()s. */
static void load_ok(const char *text, struct conf *c)
{
    struct cfg_error e;
    char out[1024];
    int rc = cfg_load_string(&schema, "t.conf", text, strlen(text), c, &e);

    if (rc != 0)
        fail_msg("unexpected error: %s", cfg_error_format(&e, out, sizeof out));
}

/* Loads len bytes; asserts failure with exactly `expected`. */
static void expect_err_len(const char *text, size_t len, const char *expected)
{
    struct conf c;
    struct cfg_error e;
    char out[1024];
    int rc;

    memset(&c, 0xA5, sizeof c);     /* the loader must initialise every field */
    rc = cfg_load_string(&schema, "t.conf", text, len, &c, &e);
    assert_int_equal(rc, -1);
    assert_string_equal(cfg_error_format(&e, out, sizeof out), expected);
    cfg_free(&schema, &c);
}

static void expect_err(const char *text, const char *expected)
{
    expect_err_len(text, strlen(text), expected);
}

/* ------------------------------------------------------------------------ */

static void test_full_file(void **state)
{
    struct conf c;

    (void)state;
    load_ok("; refuge.conf\n"
            "[node]\n"
            "name = eu-1\n"
            "data_dir = /srv/refuge\n"
            "initial_role = active\n"
            "\n"
            "[http]\n"
            "listen = [::1]:8443\n"
            "public_url = https://id.example.com\n"
            "threads = 16\n"
            "max_body_bytes = 64k\n"
            "offset = -42\n"
            "[replication]\n"
            "peer = 10.0.0.2:7000\n"
            "mode = remote_apply\n"
            "max_lag_ms = 2m\n"
            "timeout = 1d\n"
            "replicate_sessions = yes\n"
            "label = hello world\n"
            "[region]\n"
            "dc = fra\n",
            &c);
    assert_string_equal(c.name, "eu-1");
    assert_string_equal(c.data_dir, "/srv/refuge");
    assert_int_equal(c.role, 0);
    assert_string_equal(c.listen, "[::1]:8443");
    assert_string_equal(c.public_url, "https://id.example.com");
    assert_int_equal(c.threads, 16);
    assert_int_equal(c.max_body, 65536);
    assert_int_equal(c.offset, -42);
    assert_string_equal(c.peer, "10.0.0.2:7000");
    assert_int_equal(c.mode, 2);
    assert_int_equal(c.max_lag_ms, 120000);
    assert_int_equal(c.timeout_ms, 86400000);
    assert_true(c.sessions);
    assert_string_equal(c.label, "hello world");
    assert_int_equal(c.region.n, 1);
    assert_string_equal(cfg_kvlist_get(&c.region, "dc"), "fra");
    cfg_free(&schema, &c);
}

static void test_defaults_applied(void **state)
{
    struct conf c;

    (void)state;
    load_ok(NODE, &c);
    assert_string_equal(c.name, "n1");
    assert_string_equal(c.data_dir, "/var/lib/refuge");
    assert_int_equal(c.role, 1);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_null(c.public_url);
    assert_null(c.peer);
    assert_int_equal(c.threads, 4);
    assert_int_equal(c.max_body, 1048576);
    assert_int_equal(c.offset, 0);
    assert_int_equal(c.mode, 0);
    assert_int_equal(c.max_lag_ms, 5000);
    assert_false(c.sessions);
    assert_string_equal(c.label, "default-label");
    assert_int_equal(c.region.n, 0);
    assert_null(cfg_kvlist_get(&c.region, "dc"));
    cfg_free(&schema, &c);
}

static void test_cfg_defaults_only(void **state)
{
    struct conf c;
    struct cfg_error e;

    (void)state;
    memset(&c, 0x5A, sizeof c);
    assert_int_equal(cfg_defaults(&schema, &c, &e), 0);
    assert_null(c.name);
    assert_string_equal(c.data_dir, "/var/lib/refuge");
    assert_int_equal(c.threads, 4);
    cfg_free(&schema, &c);
}

static void test_file_overrides_default_and_free_idempotent(void **state)
{
    struct conf c;

    (void)state;
    /* the default strings must be freed when the file sets the key (ASan/LSan checks) */
    load_ok(NODE "data_dir = /a\n[http]\nlisten = 0.0.0.0:80\n[replication]\nlabel = x\n", &c);
    assert_string_equal(c.data_dir, "/a");
    assert_string_equal(c.listen, "0.0.0.0:80");
    assert_string_equal(c.label, "x");
    cfg_free(&schema, &c);
    assert_null(c.data_dir);
    assert_null(c.name);
    assert_null(c.region.items);
    cfg_free(&schema, &c);          /* idempotent */
}

static void test_empty_file_missing_required(void **state)
{
    (void)state;
    expect_err("", "t.conf: node.name: required key is missing");
    expect_err("\n\n; only comments\n# here\n", "t.conf: node.name: required key is missing");
    expect_err("[http]\nthreads = 3\n", "t.conf: node.name: required key is missing");
}

static void test_unknown_section(void **state)
{
    (void)state;
    expect_err(NODE "[bogus]\nx = 1\n", "t.conf:3: bogus: unknown section");
    /* no keys in it: still an error */
    expect_err(NODE "\n[nothing]\n", "t.conf:4: nothing: unknown section");
    expect_err(NODE "[]\n", "t.conf:3: empty section name");
    expect_err(NODE "[http] junk\n", "t.conf:3: unexpected text after ']'");
}

static void test_section_syntax_variants(void **state)
{
    struct conf c;

    (void)state;
    load_ok("[ node ]   ; trailing comment\nname = n\n[http] # also a comment\nthreads = 2\n", &c);
    assert_string_equal(c.name, "n");
    assert_int_equal(c.threads, 2);
    cfg_free(&schema, &c);
    /* names are case-sensitive */
    expect_err("[Node]\nname = n\n", "t.conf:1: Node: unknown section");
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_err("[node]\nnmae = n1\n", "t.conf:2: node.nmae: unknown key");
    expect_err(NODE "[http]\nthread = 4\n", "t.conf:4: http.thread: unknown key");
    /* a key of another section is unknown here */
    expect_err(NODE "threads = 4\n", "t.conf:3: node.threads: unknown key");
    expect_err("name = n1\n[node]\n", "t.conf:1: name: key outside of any [section]");
    expect_err(NODE "= 4\n", "t.conf:3: node: missing key name before '='");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    expect_err("[node]\nname = a\n\nname = b\n",
               "t.conf:4: node.name: duplicate key (first set on line 2)");
    /* the same section opened twice: still one namespace */
    expect_err(NODE "[http]\nthreads = 1\n[node]\n[http]\nthreads = 2\n",
               "t.conf:7: http.threads: duplicate key (first set on line 4)");
}

static void test_int(void **state)
{
    struct conf c;

    (void)state;
    load_ok(NODE "[http]\nthreads =   256   \noffset = -9223372036854775808\n", &c);
    assert_int_equal(c.threads, 256);
    assert_true(c.offset == INT64_MIN);
    cfg_free(&schema, &c);
    load_ok(NODE "[http]\nthreads = 1\noffset = 9223372036854775807\n", &c);
    assert_int_equal(c.threads, 1);
    assert_true(c.offset == INT64_MAX);
    cfg_free(&schema, &c);

    expect_err(NODE "\n\n\n\n\n\n\n\n[http]\nthreads = lots\n",
               "t.conf:12: http.threads: must be an integer from 1 to 256, got \"lots\"");
    expect_err(NODE "[http]\nthreads = 0\n",
               "t.conf:4: http.threads: must be an integer from 1 to 256, got \"0\"");
    expect_err(NODE "[http]\nthreads = 257\n",
               "t.conf:4: http.threads: must be an integer from 1 to 256, got \"257\"");
    expect_err(NODE "[http]\nthreads = +4\n",
               "t.conf:4: http.threads: must be an integer from 1 to 256, got \"+4\"");
    expect_err(NODE "[http]\nthreads = 4 4\n",
               "t.conf:4: http.threads: must be an integer from 1 to 256, got \"4 4\"");
    expect_err(NODE "[http]\nthreads =\n",
               "t.conf:4: http.threads: must be an integer from 1 to 256, got \"\"");
    expect_err(NODE "[http]\noffset = 9223372036854775808\n",
               "t.conf:4: http.offset: must be an integer, got \"9223372036854775808\"");
    expect_err(NODE "[http]\noffset = -\n", "t.conf:4: http.offset: must be an integer, got \"-\"");
}

static void test_bool(void **state)
{
    static const char *const yes[] = { "true", "TRUE", "yes", "On", "1" };
    static const char *const no[] = { "false", "No", "off", "0" };
    bool b;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        b = false;
        assert_int_equal(cfg_parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (i = 0; i < sizeof no / sizeof no[0]; i++) {
        b = true;
        assert_int_equal(cfg_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    assert_int_equal(cfg_parse_bool("", &b), -EINVAL);
    assert_int_equal(cfg_parse_bool("2", &b), -EINVAL);
    assert_int_equal(cfg_parse_bool("yess", &b), -EINVAL);
    expect_err(NODE "[replication]\nreplicate_sessions = maybe\n",
               "t.conf:4: replication.replicate_sessions: must be true or false "
               "(or yes/no, on/off, 1/0), got \"maybe\"");
}

static void test_enum(void **state)
{
    struct conf c;

    (void)state;
    load_ok(NODE "[replication]\nmode = remote_write\n", &c);
    assert_int_equal(c.mode, 1);
    cfg_free(&schema, &c);
    expect_err(NODE "[replication]\nmode = sync\n",
               "t.conf:4: replication.mode: must be one of async, remote_write, remote_apply, "
               "got \"sync\"");
    /* case-sensitive */
    expect_err(NODE "initial_role = Active\n",
               "t.conf:3: node.initial_role: must be one of active, standby, got \"Active\"");
}

static void test_duration(void **state)
{
    static const struct { const char *in; int64_t ms; } good[] = {
        { "0", 0 }, { "250", 250 }, { "250ms", 250 }, { "5s", 5000 }, { "2m", 120000 },
        { "1h", 3600000 }, { "1d", 86400000 }, { "10 s", 10000 },
        { "9223372036854775807ms", INT64_MAX },
    };
    static const char *const bad[] = { "", "s", "5x", "-5s", "1.5s", "5S", "5 s s", "5sec" };
    int64_t v;
    size_t i;
    struct conf c;

    (void)state;
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(cfg_parse_duration_ms(good[i].in, &v), 0);
        assert_true(v == good[i].ms);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cfg_parse_duration_ms(bad[i], &v), -EINVAL);
    assert_int_equal(cfg_parse_duration_ms("9223372036854775807s", &v), -ERANGE);
    assert_int_equal(cfg_parse_duration_ms("99999999999999999999", &v), -ERANGE);

    load_ok(NODE "[replication]\nmax_lag_ms = 1h\ntimeout = 30s\n", &c);
    assert_int_equal(c.max_lag_ms, 3600000);
    assert_int_equal(c.timeout_ms, 30000);
    cfg_free(&schema, &c);
    expect_err(NODE "[replication]\nmax_lag_ms = 61m\n",
               "t.conf:4: replication.max_lag_ms: must be a duration (ms, s, m, h, d) "
               "from 0ms to 1h, got \"61m\"");
    expect_err(NODE "[replication]\ntimeout = soon\n",
               "t.conf:4: replication.timeout: must be a duration (ms, s, m, h, d), got \"soon\"");
}

static void test_size(void **state)
{
    static const struct { const char *in; int64_t n; } good[] = {
        { "512", 512 }, { "64k", 65536 }, { "64K", 65536 }, { "2KiB", 2048 },
        { "16M", 16 << 20 }, { "3MiB", 3 << 20 }, { "1G", 1 << 30 }, { "2GiB", 2ll << 30 },
        { "0", 0 }, { "8 M", 8 << 20 },
    };
    static const char *const bad[] = { "", "k", "1T", "-1", "1kb", "1.5M", "1m", "M1" };
    int64_t v;
    size_t i;
    struct conf c;

    (void)state;
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(cfg_parse_size(good[i].in, &v), 0);
        assert_true(v == good[i].n);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cfg_parse_size(bad[i], &v), -EINVAL);
    assert_int_equal(cfg_parse_size("9000000000G", &v), -ERANGE);

    load_ok(NODE "[http]\nmax_body_bytes = 64M\n", &c);
    assert_int_equal(c.max_body, 64 << 20);
    cfg_free(&schema, &c);
    expect_err(NODE "[http]\nmax_body_bytes = 128M\n",
               "t.conf:4: http.max_body_bytes: must be a size (bytes, k, M, G) from 1k to 64M, "
               "got \"128M\"");
    expect_err(NODE "[http]\nmax_body_bytes = 1023\n",
               "t.conf:4: http.max_body_bytes: must be a size (bytes, k, M, G) from 1k to 64M, "
               "got \"1023\"");
    expect_err(NODE "[http]\nmax_body_bytes = huge\n",
               "t.conf:4: http.max_body_bytes: must be a size (bytes, k, M, G) from 1k to 64M, "
               "got \"huge\"");
}

static void test_listen(void **state)
{
    static const char *const good[] = {
        "0.0.0.0:80", "[::1]:8080", "[::]:65535", "localhost:443", "id-1.example.com:1",
    };
    static const char *const bad[] = {
        "8080", "host:", ":80", "host:65536", "[::1]", "::1:80", "[zz]:80",
        "a b:80", "host:8o", "[::1]x:80", "host:0", "host:-1",
    };
    char text[256], expect[512];
    struct conf c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(text, sizeof text, NODE "[http]\nlisten = %s\n", good[i]);
        load_ok(text, &c);
        assert_string_equal(c.listen, good[i]);
        cfg_free(&schema, &c);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, NODE "[http]\nlisten = %s\n", bad[i]);
        snprintf(expect, sizeof expect,
                 "t.conf:4: http.listen: must be host:port or [ipv6]:port with a port from 1 "
                 "to 65535, got \"%s\"", bad[i]);
        expect_err(text, expect);
    }
    /* min == 0: port 0 allowed (ephemeral ports in tests) */
    load_ok(NODE "[replication]\npeer = 127.0.0.1:0\n", &c);
    assert_string_equal(c.peer, "127.0.0.1:0");
    cfg_free(&schema, &c);
    expect_err(NODE "[replication]\npeer = 127.0.0.1\n",
               "t.conf:4: replication.peer: must be host:port or [ipv6]:port with a port from 0 "
               "to 65535, got \"127.0.0.1\"");
}

static void test_url(void **state)
{
    static const char *const good[] = {
        "https://id.example.com", "http://localhost:8080/base", "HTTPS://h/x",
        "https://[::1]:8443/x?y=z", "https://h/cb?a=b&c=d;e",
    };
    static const char *const bad[] = {
        "ftp://h", "https://", "https:///path", "https://h/#frag", "https://h/a b",
        "https://user:pw@h/", "http://h:99999", "http://h:", "id.example.com",
        "https://[::1/", "https://h\x01/",
    };
    char text[256], expect[512], got[128];
    struct conf c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(text, sizeof text, NODE "[http]\npublic_url = %s\n", good[i]);
        load_ok(text, &c);
        assert_string_equal(c.public_url, good[i]);
        cfg_free(&schema, &c);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, NODE "[http]\npublic_url = %s\n", bad[i]);
        if (strchr(bad[i], '\x01'))
            snprintf(got, sizeof got, "https://h\\x01/");
        else
            snprintf(got, sizeof got, "%s", bad[i]);
        snprintf(expect, sizeof expect,
                 "t.conf:4: http.public_url: must be an http:// or https:// URL with a host and "
                 "no user info, fragment or whitespace, got \"%s\"", got);
        expect_err(text, expect);
    }
}

static void test_path_and_string_length(void **state)
{
    char text[256];
    struct conf c;

    (void)state;
    expect_err(NODE "data_dir =    \n", "t.conf:3: node.data_dir: must be a non-empty path");
    expect_err("[node]\nname =\n", "t.conf:2: node.name: must be from 1 to 32 bytes long, got 0 bytes");
    snprintf(text, sizeof text, "[node]\nname = %s\n", "abcdefghijklmnopqrstuvwxyz0123456");
    expect_err(text, "t.conf:2: node.name: must be from 1 to 32 bytes long, got 33 bytes");
    snprintf(text, sizeof text, "[node]\nname = %s\n", "abcdefghijklmnopqrstuvwxyz012345");
    load_ok(text, &c);
    assert_int_equal(strlen(c.name), 32);
    cfg_free(&schema, &c);
    /* unbounded string: empty is fine */
    load_ok(NODE "[replication]\nlabel =\n", &c);
    assert_string_equal(c.label, "");
    cfg_free(&schema, &c);
}

static void test_free_section(void **state)
{
    struct conf c;

    (void)state;
    load_ok(NODE "[region]\ndc = fra\n  zone = b  \n\n[http]\nthreads = 2\n[region]\nurl = https://x/?a=b\n",
            &c);
    assert_int_equal(c.region.n, 3);
    assert_string_equal(c.region.items[0].key, "dc");
    assert_int_equal(c.region.items[0].line, 4);
    assert_string_equal(c.region.items[1].key, "zone");
    assert_string_equal(c.region.items[1].value, "b");
    assert_int_equal(c.region.items[1].line, 5);
    assert_int_equal(c.region.items[2].line, 10);
    assert_string_equal(cfg_kvlist_get(&c.region, "url"), "https://x/?a=b");
    assert_null(cfg_kvlist_get(&c.region, "nope"));
    assert_int_equal(c.threads, 2);
    cfg_free(&schema, &c);
    assert_int_equal(c.region.n, 0);

    expect_err(NODE "[region]\ndc = a\ndc = b\n",
               "t.conf:5: region.dc: duplicate key (first set on line 4)");
}

static void test_free_section_limit(void **state)
{
    struct conf c;
    char *text = malloc(1100 * 16 + 64);
    size_t pos;
    int i;

    (void)state;
    pos = (size_t)sprintf(text, NODE "[region]\n");
    for (i = 0; i < 1024; i++)
        pos += (size_t)sprintf(text + pos, "k%d = %d\n", i, i);
    load_ok(text, &c);
    assert_int_equal(c.region.n, 1024);
    assert_string_equal(cfg_kvlist_get(&c.region, "k1023"), "1023");
    cfg_free(&schema, &c);
    sprintf(text + pos, "k1024 = x\n");
    expect_err(text, "t.conf:1028: region: too many keys (limit 1024)");
    free(text);
}

static void test_long_lines(void **state)
{
    size_t n = 4096;
    char *text = malloc(n + 64);
    struct conf c;
    size_t pos;

    (void)state;
    /* a line of exactly 4096 bytes (label = xxx...) is fine, CRLF not counted */
    pos = (size_t)sprintf(text, NODE "[replication]\nlabel = ");
    memset(text + pos, 'x', n - 8);
    memcpy(text + pos + n - 8, "\r\n", 3);
    load_ok(text, &c);
    assert_int_equal(strlen(c.label), n - 8);
    cfg_free(&schema, &c);
    /* one more byte is an error on that line */
    memset(text + pos, 'x', n - 7);
    memcpy(text + pos + n - 7, "\n", 2);
    expect_err(text, "t.conf:4: line is longer than 4096 bytes");
    /* also without a trailing newline, and inside a comment */
    text[strlen(text) - 1] = '\0';
    text[pos - 8] = ';';
    expect_err(text, "t.conf:4: line is longer than 4096 bytes");
    free(text);
}

static void test_file_too_large(void **state)
{
    size_t n = 1024 * 1024 + 1;
    char *text = malloc(n);
    struct conf c;

    (void)state;
    memset(text, '\n', n);
    memcpy(text, NODE, strlen(NODE));
    expect_err_len(text, n, "t.conf: file is larger than 1048576 bytes");
    {
        struct cfg_error e;
        assert_int_equal(cfg_load_string(&schema, "t.conf", text, n - 1, &c, &e), 0);
        cfg_free(&schema, &c);
    }
    free(text);
}

static void test_comments(void **state)
{
    struct conf c;

    (void)state;
    load_ok("; comment\n"
            "# comment\n"
            "   ; indented comment\n"
            "[node]\n"
            "name = n1 ; inline comment\n"
            "[replication]\n"
            "label = a;b#c\n"
            "[region]\n"
            "hash = x # not a comment\n"
            "semi = y\t; tab before ; is a comment\n",
            &c);
    assert_string_equal(c.name, "n1");
    assert_string_equal(c.label, "a;b#c");
    assert_string_equal(cfg_kvlist_get(&c.region, "hash"), "x # not a comment");
    assert_string_equal(cfg_kvlist_get(&c.region, "semi"), "y");
    cfg_free(&schema, &c);
    /* a ';' comment before '=' leaves no '=' on the line */
    expect_err(NODE "threads ; = 4\n", "t.conf:3: expected \"key = value\", got \"threads ; = 4\"");
}

static void test_value_with_equals_and_colon(void **state)
{
    struct conf c;

    (void)state;
    load_ok(NODE "[region]\nexpr = a=b=c\nurl = https://h:8443/p?x=1\n[http]\nlisten: [::1]:9\n",
            &c);
    assert_string_equal(cfg_kvlist_get(&c.region, "expr"), "a=b=c");
    assert_string_equal(cfg_kvlist_get(&c.region, "url"), "https://h:8443/p?x=1");
    assert_string_equal(c.listen, "[::1]:9");
    cfg_free(&schema, &c);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_err(NODE "garbage\n", "t.conf:3: expected \"key = value\", got \"garbage\"");
    expect_err("[node\nname = n1\n",
               "t.conf:1: section header without a closing ']': \"[node\"");
    expect_err("[node ; comment]\nname = n1\n",
               "t.conf:1: section header without a closing ']': \"[node ; comment]\"");
    /* the first error wins, whichever kind */
    expect_err(NODE "oops\n[http]\nthread = 1\n", "t.conf:3: expected \"key = value\", got \"oops\"");
    expect_err(NODE "[http]\nthread = 1\noops\n", "t.conf:4: http.thread: unknown key");
}

static void test_nul_byte(void **state)
{
    static const char text[] = "[node]\nname = n1\n[http]\nthreads = 4\0junk\n";

    (void)state;
    expect_err_len(text, sizeof text - 1, "t.conf:4: line contains a NUL byte");
}

static void test_crlf_bom_indent(void **state)
{
    struct conf c;

    (void)state;
    load_ok("\xEF\xBB\xBF[node]\r\nname = n1\r\n[http]\r\n    threads = 8\r\n\tlisten = 1.2.3.4:5\r\n", &c);
    assert_string_equal(c.name, "n1");
    assert_int_equal(c.threads, 8);
    assert_string_equal(c.listen, "1.2.3.4:5");
    cfg_free(&schema, &c);
}

static void test_bad_default(void **state)
{
    static const struct cfg_key bad_keys[] = {
        { "http", "threads", CFG_INT, 0, "many", 1, 256, NULL, false, "" },
    };
    static const struct cfg_schema bad = { bad_keys, 1 };
    int64_t v;
    struct cfg_error e;
    char out[512];

    (void)state;
    assert_int_equal(cfg_defaults(&bad, &v, &e), -1);
    assert_string_equal(cfg_error_format(&e, out, sizeof out),
                        "http.threads: invalid default: must be an integer from 1 to 256, got \"many\"");
    assert_int_equal(cfg_load_string(&bad, "x.conf", "", 0, &v, &e), -1);
    assert_int_equal(e.line, 0);
}

static void test_error_quoting(void **state)
{
    char text[256], expect[512], as[101];

    (void)state;
    expect_err(NODE "[http]\nthreads = \"4\"\\\x7f\n",
               "t.conf:4: http.threads: must be an integer from 1 to 256, got \"\\\"4\\\"\\\\\\x7f\"");
    /* long values are cut */
    memset(as, 'a', 100);
    as[100] = '\0';
    snprintf(text, sizeof text, NODE "[http]\nthreads = %s\n", as);
    snprintf(expect, sizeof expect,
             "t.conf:4: http.threads: must be an integer from 1 to 256, got \"%.64s...\"", as);
    expect_err(text, expect);
}

static void test_error_format(void **state)
{
    struct cfg_error e;
    char out[128], small[8];

    (void)state;
    memset(&e, 0, sizeof e);
    strcpy(e.msg, "boom");
    assert_string_equal(cfg_error_format(&e, out, sizeof out), "boom");
    strcpy(e.key, "a.b");
    assert_string_equal(cfg_error_format(&e, out, sizeof out), "a.b: boom");
    strcpy(e.file, "f.conf");
    assert_string_equal(cfg_error_format(&e, out, sizeof out), "f.conf: a.b: boom");
    e.line = 7;
    assert_string_equal(cfg_error_format(&e, out, sizeof out), "f.conf:7: a.b: boom");
    assert_string_equal(cfg_error_format(&e, small, sizeof small), "f.conf:");
}

static const char *tmpdir(void)
{
    const char *d = getenv("REFUGE_TEST_TMP");
    return d && *d ? d : "/tmp";
}

static void test_load_file(void **state)
{
    char path[512], out[1024];
    struct conf c;
    struct cfg_error e;
    FILE *f;

    (void)state;
    mkdir(tmpdir(), 0700);
    snprintf(path, sizeof path, "%s/test_core_config_%d.conf", tmpdir(), (int)getpid());
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[node]\nname = from-file\n[http]\nthreads = x\n", f);
    fclose(f);
    assert_int_equal(cfg_load_file(&schema, path, &c, &e), -1);
    snprintf(out, sizeof out, "%s:4: http.threads: must be an integer from 1 to 256, got \"x\"", path);
    {
        char got[1024];
        assert_string_equal(cfg_error_format(&e, got, sizeof got), out);
    }
    cfg_free(&schema, &c);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[node]\nname = from-file\n", f);
    fclose(f);
    assert_int_equal(cfg_load_file(&schema, path, &c, &e), 0);
    assert_string_equal(c.name, "from-file");
    cfg_free(&schema, &c);
    unlink(path);

    memset(&c, 0xA5, sizeof c);
    assert_int_equal(cfg_load_file(&schema, "/nonexistent/refuge.conf", &c, &e), -1);
    assert_string_equal(cfg_error_format(&e, out, sizeof out),
                        "/nonexistent/refuge.conf: cannot open: No such file or directory");
    cfg_free(&schema, &c);

    assert_int_equal(cfg_load_file(&schema, tmpdir(), &c, &e), -1);
    snprintf(path, sizeof path, "%s: cannot read: Is a directory", tmpdir());
    assert_string_equal(cfg_error_format(&e, out, sizeof out), path);
    cfg_free(&schema, &c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_defaults_applied),
        cmocka_unit_test(test_cfg_defaults_only),
        cmocka_unit_test(test_file_overrides_default_and_free_idempotent),
        cmocka_unit_test(test_empty_file_missing_required),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_section_syntax_variants),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_enum),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_path_and_string_length),
        cmocka_unit_test(test_free_section),
        cmocka_unit_test(test_free_section_limit),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_file_too_large),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_value_with_equals_and_colon),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_crlf_bom_indent),
        cmocka_unit_test(test_bad_default),
        cmocka_unit_test(test_error_quoting),
        cmocka_unit_test(test_error_format),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
