/*
 * config — INI files checked against a schema (config.h).
 *
 * A daemon that half-understands its configuration is worse than one that
 * refuses to start, so every key a program accepts is declared once, and a
 * load either yields typed values for all of them or one error naming file,
 * line and key. The same loader validates refuge.conf and the artifact files
 * that arrive over replication, so it is also a parser of remote input: hard
 * limits on line length (4096 bytes) and file size (1 MiB), no NUL bytes.
 *
 * The syntax is libinih's (version 55, the Debian build with run-time
 * options, which this file pins once per process). Input goes through
 * ini_parse_stream() with our own line reader, which lets us take
 * (bytes, length) input, enforce the limits, know the line number of every
 * callback (the library is built without INI_HANDLER_LINENO) and see section
 * headers (inih does not report them, yet an unknown empty section is an
 * error too). The rules:
 *
 *   - `[section]`: whitespace inside the brackets is trimmed; after the `]`
 *     only whitespace or a comment may follow. Names are case-sensitive.
 *   - `key = value`: the first `=` separates (inih also takes `key: value`;
 *     the first `=` or `:` wins), so values may contain both:
 *     `listen = [::1]:8080`, `url = https://h/cb?a=b`. Key and value are
 *     trimmed of surrounding whitespace.
 *   - Comments: a line whose first non-blank character is `;` or `#`. Inline
 *     comments follow inih's default: a `;` preceded by whitespace ends the
 *     value (`threads = 4 ; four` is "4"). A `;` not preceded by whitespace
 *     and a `#` after the start of a line are ordinary characters
 *     (`a;b`, `x#y`). There is no quoting: a value cannot contain " ;".
 *   - No continuation lines (inih's multi-line values are switched off): an
 *     indented line stands on its own. A UTF-8 BOM and CRLF endings are fine.
 *   - A line longer than 4096 bytes (terminator not counted), a NUL byte, or
 *     input over 1 MiB is an error.
 *
 * Bounds (min, max) in struct cfg_key:
 *   INT, DURATION, SIZE   value range, checked unless min == max == 0
 *                         (DURATION and SIZE never accept negatives);
 *   STRING, URL, PATH     length in bytes, checked when max > 0;
 *   LISTEN                port range [min, max > 0 ? max : 65535]: port 0
 *                         is accepted only when min == 0.
 * `required` means the key must appear in the file (its default does not
 * count); it is ignored on CFG_FREE entries.
 *
 * Ownership: before anything can fail, every field the schema describes is
 * set to zero/NULL (old contents are overwritten, not freed: cfg_free() a
 * struct before loading into it again). Strings are xmalloc'd and released
 * by cfg_free(), which NULLs what it frees and so may be called twice.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <ini.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"
#include "core/xmalloc.h"

#define CFG_MAX_LINE 4096               /* bytes per line, terminator excluded */
#define CFG_MAX_FILE (1024 * 1024)      /* bytes per file */
#define CFG_MAX_FREE_KEYS 1024          /* keys per free-form section */
#define GOT_MAX 64                      /* bytes of a bad value quoted in errors */

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static void set_errv(struct cfg_error *err, const char *file, int line, struct str section,
                     struct str name, const char *fmt, va_list ap)
{
    memset(err, 0, sizeof *err);
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->line = line;
    if (section.len && name.len)
        snprintf(err->key, sizeof err->key, "%.*s.%.*s", STR_FMT(section), STR_FMT(name));
    else if (section.len || name.len)
        snprintf(err->key, sizeof err->key, "%.*s", STR_FMT(section.len ? section : name));
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

static void __attribute__((format(printf, 6, 7)))
set_err(struct cfg_error *err, const char *file, int line, struct str section, struct str name,
        const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_errv(err, file, line, section, name, fmt, ap);
    va_end(ap);
}

/* Writes `"value"` for an error message: at most GOT_MAX bytes of it, quotes,
 * backslashes and non-printable bytes escaped, "..." when cut. */
static const char *quote(const char *v, char *out, size_t outlen)
{
    size_t i, o = 0, n = strlen(v);

    assert(outlen >= GOT_MAX * 4 + 8);
    out[o++] = '"';
    for (i = 0; i < n && i < GOT_MAX; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (i < n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

const char *cfg_error_format(const struct cfg_error *err, char *out, size_t outlen)
{
    size_t pos = 0;
    int n;

    if (outlen == 0)
        return out;
    out[0] = '\0';
    if (err->file[0]) {
        if (err->line > 0)
            n = snprintf(out, outlen, "%s:%d: ", err->file, err->line);
        else
            n = snprintf(out, outlen, "%s: ", err->file);
        pos = n < 0 ? 0 : (size_t)n;
    }
    if (err->key[0] && pos < outlen) {
        n = snprintf(out + pos, outlen - pos, "%s: ", err->key);
        pos += n < 0 ? 0 : (size_t)n;
    }
    if (pos < outlen)
        snprintf(out + pos, outlen - pos, "%s", err->msg);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Value parsers                                                            */
/* ------------------------------------------------------------------------ */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Decimal with an optional leading '-', nothing else. 0, -EINVAL or -ERANGE. */
static int parse_i64(const char *s, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0, limit;

    if (*s == '-') {
        neg = true;
        s++;
    }
    if (!is_digit(*s))
        return -EINVAL;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (limit - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (*s)
        return -EINVAL;
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 0;
}

/* "<digits>[blanks]<unit>": the number, and the unit in *unit (maybe ""). */
static int parse_scaled(const char *s, uint64_t *num, const char **unit)
{
    uint64_t v = 0;

    if (!is_digit(*s))
        return -EINVAL;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    while (is_blank(*s))
        s++;
    *num = v;
    *unit = s;
    return 0;
}

static int scale(uint64_t v, uint64_t mult, int64_t *out)
{
    if (v > (uint64_t)INT64_MAX / mult)
        return -ERANGE;
    *out = (int64_t)(v * mult);
    return 0;
}

int cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    size_t i;

    for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

int cfg_parse_duration_ms(const char *s, int64_t *out)
{
    static const struct { const char *unit; uint64_t ms; } units[] = {
        { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
        { "h", 3600000 }, { "d", 86400000 },
    };
    const char *unit;
    uint64_t v;
    size_t i;
    int rc = parse_scaled(s, &v, &unit);

    if (rc < 0)
        return rc;
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit, units[i].unit) == 0)
            return scale(v, units[i].ms, out);
    return -EINVAL;
}

int cfg_parse_size(const char *s, int64_t *out)
{
    static const struct { const char *unit; uint64_t mult; } units[] = {
        { "", 1 },
        { "k", 1ull << 10 }, { "K", 1ull << 10 }, { "KiB", 1ull << 10 },
        { "M", 1ull << 20 }, { "MiB", 1ull << 20 },
        { "G", 1ull << 30 }, { "GiB", 1ull << 30 },
    };
    const char *unit;
    uint64_t v;
    size_t i;
    int rc = parse_scaled(s, &v, &unit);

    if (rc < 0)
        return rc;
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit, units[i].unit) == 0)
            return scale(v, units[i].mult, out);
    return -EINVAL;
}

/* Port: 1-5 digits within [lo, hi]. */
static bool valid_port(const char *s, size_t n, int64_t lo, int64_t hi)
{
    int64_t v = 0;
    size_t i;

    if (n == 0 || n > 5)
        return false;
    for (i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    return v >= lo && v <= hi && v <= 65535;
}

static bool valid_ipv6(const char *s, size_t n)
{
    char tmp[64];
    struct in6_addr a;

    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, &a) == 1;
}

/* A DNS name or IPv4 literal: letters, digits, '.', '-', '_'. */
static bool valid_hostname(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > 253)
        return false;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* host[:port] or [v6][:port], the whole of s[0..n). need_port: port required. */
static bool valid_hostport(const char *s, size_t n, bool need_port, int64_t lo, int64_t hi)
{
    const char *colon;
    size_t hostlen;

    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || !valid_ipv6(s + 1, (size_t)(close - s - 1)))
            return false;
        hostlen = (size_t)(close - s) + 1;
        if (hostlen == n)
            return !need_port;
        if (s[hostlen] != ':')
            return false;
        return valid_port(s + hostlen + 1, n - hostlen - 1, lo, hi);
    }
    colon = memchr(s, ':', n);
    if (!colon)
        return !need_port && valid_hostname(s, n);
    hostlen = (size_t)(colon - s);
    return valid_hostname(s, hostlen) && valid_port(colon + 1, n - hostlen - 1, lo, hi);
}

static bool valid_listen(const char *v, int64_t min, int64_t max)
{
    int64_t lo = min > 0 ? min : 0;
    int64_t hi = max > 0 ? max : 65535;

    return valid_hostport(v, strlen(v), true, lo, hi);
}

/* http(s)://host[:port][/path][?query]; no user info, fragment, blanks or controls. */
static bool valid_url(const char *v)
{
    const char *auth, *end;
    size_t i;

    for (i = 0; v[i]; i++)
        if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f || v[i] == '#')
            return false;
    if (strncasecmp(v, "http://", 7) == 0)
        auth = v + 7;
    else if (strncasecmp(v, "https://", 8) == 0)
        auth = v + 8;
    else
        return false;
    end = auth + strcspn(auth, "/?");
    if (memchr(auth, '@', (size_t)(end - auth)))
        return false;
    return valid_hostport(auth, (size_t)(end - auth), false, 1, 65535);
}

static void fmt_duration(int64_t ms, char *out, size_t outlen)
{
    static const struct { const char *unit; int64_t ms; } units[] = {
        { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
    };
    size_t i;

    for (i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(out, outlen, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    snprintf(out, outlen, "%lldms", (long long)ms);
}

static void fmt_size(int64_t n, char *out, size_t outlen)
{
    static const struct { const char *unit; int64_t mult; } units[] = {
        { "G", 1ll << 30 }, { "M", 1ll << 20 }, { "k", 1ll << 10 },
    };
    size_t i;

    for (i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (n != 0 && n % units[i].mult == 0) {
            snprintf(out, outlen, "%lld%s", (long long)(n / units[i].mult), units[i].unit);
            return;
        }
    }
    snprintf(out, outlen, "%lld", (long long)n);
}

/* " from A to B" when the key has numeric bounds, else "". */
static void fmt_range(const struct cfg_key *k, char *out, size_t outlen)
{
    char lo[32], hi[32];

    out[0] = '\0';
    if (k->min == 0 && k->max == 0)
        return;
    if (k->type == CFG_DURATION) {
        fmt_duration(k->min, lo, sizeof lo);
        fmt_duration(k->max, hi, sizeof hi);
    } else if (k->type == CFG_SIZE) {
        fmt_size(k->min, lo, sizeof lo);
        fmt_size(k->max, hi, sizeof hi);
    } else {
        snprintf(lo, sizeof lo, "%lld", (long long)k->min);
        snprintf(hi, sizeof hi, "%lld", (long long)k->max);
    }
    snprintf(out, outlen, " from %s to %s", lo, hi);
}

static bool in_bounds(const struct cfg_key *k, int64_t v)
{
    return (k->min == 0 && k->max == 0) || (v >= k->min && v <= k->max);
}

static bool length_ok(const struct cfg_key *k, const char *v, char *msg, size_t msglen)
{
    size_t n = strlen(v);

    if (k->max <= 0 || ((int64_t)n >= k->min && (int64_t)n <= k->max))
        return true;
    snprintf(msg, msglen, "must be from %lld to %lld bytes long, got %zu bytes",
             (long long)k->min, (long long)k->max, n);
    return false;
}

static void set_string(void *out, size_t offset, const char *v)
{
    char **slot = (char **)((char *)out + offset);
    char *copy = xstrdup(v);

    free(*slot);
    *slot = copy;
}

/*
 * Parses v (trimmed, NUL-free) as k's type and stores it in out. On failure
 * writes the reason (without file, line and key) into msg, returns -EINVAL
 * and leaves out untouched.
 */
static int parse_value(const struct cfg_key *k, const char *v, void *out, char *msg, size_t msglen)
{
    char got[GOT_MAX * 4 + 8];
    char range[80];
    void *slot = (char *)out + k->offset;
    int64_t n;
    bool b;
    size_t i;

    switch (k->type) {
    case CFG_STRING:
        if (!length_ok(k, v, msg, msglen))
            return -EINVAL;
        set_string(out, k->offset, v);
        return 0;
    case CFG_INT:
        if (parse_i64(v, &n) < 0 || !in_bounds(k, n)) {
            fmt_range(k, range, sizeof range);
            snprintf(msg, msglen, "must be an integer%s, got %s", range, quote(v, got, sizeof got));
            return -EINVAL;
        }
        *(int64_t *)slot = n;
        return 0;
    case CFG_BOOL:
        if (cfg_parse_bool(v, &b) < 0) {
            snprintf(msg, msglen, "must be true or false (or yes/no, on/off, 1/0), got %s",
                     quote(v, got, sizeof got));
            return -EINVAL;
        }
        *(bool *)slot = b;
        return 0;
    case CFG_ENUM:
        assert(k->enum_values);
        for (i = 0; k->enum_values[i]; i++) {
            if (strcmp(v, k->enum_values[i]) == 0) {
                *(int *)slot = (int)i;
                return 0;
            }
        }
        {
            size_t pos = (size_t)snprintf(msg, msglen, "must be one of ");
            for (i = 0; k->enum_values[i] && pos < msglen; i++)
                pos += (size_t)snprintf(msg + pos, msglen - pos, "%s%s", i ? ", " : "",
                                        k->enum_values[i]);
            if (pos < msglen)
                snprintf(msg + pos, msglen - pos, ", got %s", quote(v, got, sizeof got));
        }
        return -EINVAL;
    case CFG_DURATION:
        if (cfg_parse_duration_ms(v, &n) < 0 || !in_bounds(k, n)) {
            fmt_range(k, range, sizeof range);
            snprintf(msg, msglen, "must be a duration (ms, s, m, h, d)%s, got %s", range,
                     quote(v, got, sizeof got));
            return -EINVAL;
        }
        *(int64_t *)slot = n;
        return 0;
    case CFG_SIZE:
        if (cfg_parse_size(v, &n) < 0 || !in_bounds(k, n)) {
            fmt_range(k, range, sizeof range);
            snprintf(msg, msglen, "must be a size (bytes, k, M, G)%s, got %s", range,
                     quote(v, got, sizeof got));
            return -EINVAL;
        }
        *(int64_t *)slot = n;
        return 0;
    case CFG_LISTEN:
        if (!valid_listen(v, k->min, k->max)) {
            snprintf(msg, msglen,
                     "must be host:port or [ipv6]:port with a port from %lld to %lld, got %s",
                     (long long)(k->min > 0 ? k->min : 0), (long long)(k->max > 0 ? k->max : 65535),
                     quote(v, got, sizeof got));
            return -EINVAL;
        }
        set_string(out, k->offset, v);
        return 0;
    case CFG_URL:
        if (!valid_url(v)) {
            snprintf(msg, msglen,
                     "must be an http:// or https:// URL with a host and no user info, "
                     "fragment or whitespace, got %s", quote(v, got, sizeof got));
            return -EINVAL;
        }
        if (!length_ok(k, v, msg, msglen))
            return -EINVAL;
        set_string(out, k->offset, v);
        return 0;
    case CFG_PATH:
        if (!*v) {
            snprintf(msg, msglen, "must be a non-empty path");
            return -EINVAL;
        }
        if (!length_ok(k, v, msg, msglen))
            return -EINVAL;
        set_string(out, k->offset, v);
        return 0;
    case CFG_FREE:
        break;
    }
    assert(!"parse_value on a CFG_FREE entry");
    snprintf(msg, msglen, "internal error: no value type");
    return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Output struct: init, defaults, free                                      */
/* ------------------------------------------------------------------------ */

static void init_fields(const struct cfg_schema *s, void *out)
{
    size_t i;

    for (i = 0; i < s->nkeys; i++) {
        const struct cfg_key *k = &s->keys[i];
        void *slot = (char *)out + k->offset;

        switch (k->type) {
        case CFG_STRING:
        case CFG_LISTEN:
        case CFG_URL:
        case CFG_PATH:
            *(char **)slot = NULL;
            break;
        case CFG_INT:
        case CFG_DURATION:
        case CFG_SIZE:
            *(int64_t *)slot = 0;
            break;
        case CFG_BOOL:
            *(bool *)slot = false;
            break;
        case CFG_ENUM:
            *(int *)slot = 0;
            break;
        case CFG_FREE:
            ((struct cfg_kvlist *)slot)->items = NULL;
            ((struct cfg_kvlist *)slot)->n = 0;
            break;
        }
    }
}

static int apply_defaults(const struct cfg_schema *s, void *out, struct cfg_error *err)
{
    char msg[sizeof err->msg];
    size_t i;

    for (i = 0; i < s->nkeys; i++) {
        const struct cfg_key *k = &s->keys[i];

        if (!k->def || k->type == CFG_FREE)
            continue;
        if (parse_value(k, k->def, out, msg, sizeof msg) < 0) {
            set_err(err, "", 0, str_from_cstr(k->section), str_from_cstr(k->name),
                    "invalid default: %s", msg);
            return -1;
        }
    }
    return 0;
}

int cfg_defaults(const struct cfg_schema *s, void *out, struct cfg_error *err)
{
    struct cfg_error scratch;

    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    init_fields(s, out);
    return apply_defaults(s, out, err);
}

void cfg_free(const struct cfg_schema *s, void *out)
{
    size_t i, j;

    if (!s || !out)
        return;
    for (i = 0; i < s->nkeys; i++) {
        const struct cfg_key *k = &s->keys[i];
        void *slot = (char *)out + k->offset;

        switch (k->type) {
        case CFG_STRING:
        case CFG_LISTEN:
        case CFG_URL:
        case CFG_PATH:
            free(*(char **)slot);
            *(char **)slot = NULL;
            break;
        case CFG_FREE: {
            struct cfg_kvlist *l = slot;
            for (j = 0; j < l->n; j++) {
                free(l->items[j].key);
                free(l->items[j].value);
            }
            free(l->items);
            l->items = NULL;
            l->n = 0;
            break;
        }
        default:
            break;
        }
    }
}

const char *cfg_kvlist_get(const struct cfg_kvlist *l, const char *key)
{
    size_t i;

    if (!l || !key)
        return NULL;
    for (i = 0; i < l->n; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return l->items[i].value;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Loading: the line reader and the inih callback                           */
/* ------------------------------------------------------------------------ */

struct parse {
    const struct cfg_schema *schema;
    void *out;
    struct cfg_error *err;
    const char *file;           /* name used in errors */
    const char *text;           /* the whole input; not NUL-terminated */
    size_t len, pos;            /* input length, offset of the next line */
    int lineno;                 /* number of the line inih is working on */
    struct str section;         /* current section (trimmed); p == NULL before the first */
    struct cfg_kvlist *free_list; /* set while in a free-form section */
    int *seen;                  /* per schema key: line where it was set, 0 = not yet */
    bool failed;                /* err is filled; stop at once */
};

static void __attribute__((format(printf, 5, 6)))
fail(struct parse *p, struct str section, struct str name, int line, const char *fmt, ...)
{
    va_list ap;

    if (p->failed)
        return;
    va_start(ap, fmt);
    set_errv(p->err, p->file, line, section, name, fmt, ap);
    va_end(ap);
    p->failed = true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* First non-blank byte of a line as inih sees it (after a BOM on line 1). */
static const char *line_start(const char *line, size_t len, int lineno, const char **end)
{
    const char *s = line, *e = line + len;

    if (lineno == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (s < e && is_space(*s))
        s++;
    *end = e;
    return s;
}

/*
 * If the line is a well-formed section header (inih's rule: first non-blank
 * is '[', and a ']' comes before any whitespace-preceded ';'), checks the
 * section against the schema and makes it current. Malformed headers are
 * left to inih, which reports their line. 0, or -1 with p->failed set.
 */
static int track_section(struct parse *p, const char *line, size_t len)
{
    const struct cfg_schema *s = p->schema;
    const char *start, *end, *q, *rest;
    bool was_space = false, known = false;
    struct str name;
    size_t i;

    start = line_start(line, len, p->lineno, &end);
    if (start == end || *start != '[')
        return 0;
    for (q = start + 1; q < end && *q != ']' && !(was_space && *q == ';'); q++)
        was_space = is_space(*q);
    if (q == end || *q != ']')
        return 0;
    for (rest = q + 1; rest < end && is_space(*rest); rest++)
        ;
    if (rest < end && *rest != ';' && *rest != '#') {
        fail(p, STR_NULL, STR_NULL, p->lineno, "unexpected text after ']'");
        return -1;
    }
    name = str_trim((struct str){ start + 1, (size_t)(q - start - 1) });
    if (name.len == 0) {
        fail(p, STR_NULL, STR_NULL, p->lineno, "empty section name");
        return -1;
    }
    p->free_list = NULL;
    for (i = 0; i < s->nkeys; i++) {
        const struct cfg_key *k = &s->keys[i];
        if (!str_eq_cstr(name, k->section))
            continue;
        known = true;
        if (k->type == CFG_FREE)
            p->free_list = (struct cfg_kvlist *)((char *)p->out + k->offset);
    }
    if (!known) {
        fail(p, name, STR_NULL, p->lineno, "unknown section");
        return -1;
    }
    p->section = name;
    return 0;
}

/*
 * The ini_reader: hands inih one line at a time (fgets semantics), checking
 * the limits first. Returning NULL ends the parse, which is how a failure in
 * here stops it.
 */
static char *read_line(char *dst, int size, void *stream)
{
    struct parse *p = stream;
    const char *line, *nl;
    size_t n, content;

    if (p->failed || p->pos >= p->len)
        return NULL;
    line = p->text + p->pos;
    nl = memchr(line, '\n', p->len - p->pos);
    n = nl ? (size_t)(nl - line) + 1 : p->len - p->pos;
    p->pos += n;
    p->lineno++;
    content = n;
    if (content > 0 && line[content - 1] == '\n')
        content--;
    if (content > 0 && line[content - 1] == '\r')
        content--;
    if (content > CFG_MAX_LINE) {
        fail(p, STR_NULL, STR_NULL, p->lineno, "line is longer than %d bytes", CFG_MAX_LINE);
        return NULL;
    }
    if (memchr(line, '\0', n)) {
        fail(p, STR_NULL, STR_NULL, p->lineno, "line contains a NUL byte");
        return NULL;
    }
    if (size <= 0 || n >= (size_t)size) {
        /* only if something else in the process changed ini_max_line */
        fail(p, STR_NULL, STR_NULL, p->lineno, "line does not fit inih's buffer (%d bytes)", size);
        return NULL;
    }
    if (track_section(p, line, content) < 0)
        return NULL;
    memcpy(dst, line, n);
    dst[n] = '\0';
    return dst;
}

static int add_free(struct parse *p, const char *name, const char *value)
{
    struct cfg_kvlist *l = p->free_list;
    size_t i;

    for (i = 0; i < l->n; i++) {
        if (strcmp(l->items[i].key, name) == 0) {
            fail(p, p->section, str_from_cstr(name), p->lineno,
                 "duplicate key (first set on line %d)", l->items[i].line);
            return 0;
        }
    }
    if (l->n >= CFG_MAX_FREE_KEYS) {
        fail(p, p->section, STR_NULL, p->lineno, "too many keys (limit %d)", CFG_MAX_FREE_KEYS);
        return 0;
    }
    if (l->n == 0 || (l->n >= 4 && (l->n & (l->n - 1)) == 0))
        l->items = xrealloc(l->items, (l->n ? l->n * 2 : 4) * sizeof *l->items);
    l->items[l->n].key = xstrdup(name);
    l->items[l->n].value = xstrdup(value);
    l->items[l->n].line = p->lineno;
    l->n++;
    return 1;
}

/* The ini_handler: one call per key = value line. Nonzero to go on. */
static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    const struct cfg_schema *s = p->schema;
    char msg[sizeof p->err->msg];
    struct str key = str_from_cstr(name);
    size_t i;

    (void)section;      /* inih cuts long names at 49 bytes; track_section has the real one */
    if (p->failed)
        return 0;
    if (!p->section.p) {
        fail(p, STR_NULL, key, p->lineno, "key outside of any [section]");
        return 0;
    }
    if (key.len == 0) {
        fail(p, p->section, STR_NULL, p->lineno, "missing key name before '='");
        return 0;
    }
    if (!value)
        value = "";
    if (p->free_list)
        return add_free(p, name, value);
    for (i = 0; i < s->nkeys; i++) {
        const struct cfg_key *k = &s->keys[i];
        if (k->name && str_eq_cstr(p->section, k->section) && strcmp(name, k->name) == 0)
            break;
    }
    if (i == s->nkeys) {
        fail(p, p->section, key, p->lineno, "unknown key");
        return 0;
    }
    if (p->seen[i]) {
        fail(p, p->section, key, p->lineno, "duplicate key (first set on line %d)", p->seen[i]);
        return 0;
    }
    p->seen[i] = p->lineno;
    if (parse_value(&s->keys[i], value, p->out, msg, sizeof msg) < 0) {
        fail(p, p->section, key, p->lineno, "%s", msg);
        return 0;
    }
    return 1;
}

/* inih rejected line `lineno` itself: say what is wrong with it. */
static void syntax_error(struct parse *p, int lineno)
{
    char got[GOT_MAX * 4 + 8];
    char *copy;
    const char *line = p->text, *nl, *start, *end;
    size_t left = p->len, n;
    int i;

    for (i = 1; i < lineno && left > 0; i++) {
        nl = memchr(line, '\n', left);
        if (!nl)
            break;
        left -= (size_t)(nl + 1 - line);
        line = nl + 1;
    }
    nl = memchr(line, '\n', left);
    n = nl ? (size_t)(nl - line) : left;
    start = line_start(line, n, lineno, &end);
    while (end > start && is_space(end[-1]))
        end--;
    copy = xstrndup(start, (size_t)(end - start));
    p->failed = false;
    if (start < end && *start == '[')
        fail(p, STR_NULL, STR_NULL, lineno, "section header without a closing ']': %s",
             quote(copy, got, sizeof got));
    else
        fail(p, STR_NULL, STR_NULL, lineno, "expected \"key = value\", got %s",
             quote(copy, got, sizeof got));
    free(copy);
}

static pthread_once_t inih_once = PTHREAD_ONCE_INIT;
static char inih_start_comments[] = ";#";
static char inih_inline_comments[] = ";";

/* Pins the library's run-time options to the rules in the header comment. */
static void inih_setup(void)
{
    ini_allow_multiline = false;
    ini_allow_bom = true;
    ini_start_comment_prefixes = inih_start_comments;
    ini_allow_inline_comments = true;
    ini_inline_comment_prefixes = inih_inline_comments;
    ini_use_stack = true;
    ini_max_line = CFG_MAX_LINE + 8;    /* line + "\r\n" + NUL fits */
    ini_allow_realloc = false;
    ini_stop_on_first_error = true;
    ini_allow_no_value = false;
}

int cfg_load_string(const struct cfg_schema *s, const char *name, const char *text, size_t len,
                    void *out, struct cfg_error *err)
{
    struct cfg_error scratch;
    struct parse p;
    size_t i;
    int r, rc = -1;

    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    memset(&p, 0, sizeof p);
    init_fields(s, out);
    if (apply_defaults(s, out, err) < 0)
        goto out;
    if (len > CFG_MAX_FILE) {
        set_err(err, name, 0, STR_NULL, STR_NULL, "file is larger than %d bytes", CFG_MAX_FILE);
        goto out;
    }
    pthread_once(&inih_once, inih_setup);

    p.schema = s;
    p.out = out;
    p.err = err;
    p.file = name ? name : "";
    p.text = text;
    p.len = len;
    p.seen = xcalloc(s->nkeys ? s->nkeys : 1, sizeof *p.seen);
    r = ini_parse_stream(read_line, &p, on_pair, &p);
    if (r > 0 && (!p.failed || r < err->line))
        syntax_error(&p, r);
    else if (r < 0 && !p.failed)
        fail(&p, STR_NULL, STR_NULL, 0, "inih failed (%d)", r);
    if (p.failed)
        goto out;

    for (i = 0; i < s->nkeys; i++) {
        const struct cfg_key *k = &s->keys[i];
        if (k->required && k->type != CFG_FREE && !p.seen[i]) {
            set_err(err, p.file, 0, str_from_cstr(k->section), str_from_cstr(k->name),
                    "required key is missing");
            goto out;
        }
    }
    rc = 0;
out:
    free(p.seen);
    return rc;
}

int cfg_load_file(const struct cfg_schema *s, const char *path, void *out, struct cfg_error *err)
{
    struct cfg_error scratch;
    FILE *f = NULL;
    char *data = NULL;
    size_t len = 0, cap = 0, got;
    int rc = -1, e;

    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    init_fields(s, out);
    f = fopen(path, "rbe");
    if (!f) {
        e = errno;
        set_err(err, path, 0, STR_NULL, STR_NULL, "cannot open: %s", strerror(e));
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > CFG_MAX_FILE) {
                set_err(err, path, 0, STR_NULL, STR_NULL, "file is larger than %d bytes",
                        CFG_MAX_FILE);
                goto out;
            }
            cap = cap ? cap * 2 : 4096;
            if (cap > CFG_MAX_FILE + 1)
                cap = CFG_MAX_FILE + 1;
            data = xrealloc(data, cap);
        }
        got = fread(data + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        e = errno;
        set_err(err, path, 0, STR_NULL, STR_NULL, "cannot read: %s", strerror(e));
        goto out;
    }
    rc = cfg_load_string(s, path, data ? data : "", len, out, err);
out:
    if (f)
        fclose(f);
    free(data);
    return rc;
}
