/*
 * schema — what a valid artifact is: file names, ${region.KEY} references,
 * and the schemas of tenants/NAME.conf and userstores/NAME.conf.
 *
 * Why this file exists: artifacts are operator input on the active node and
 * remote input on the standby, and a file that half-applies is worse than
 * one that is refused. Validation therefore happens once, here, with the same
 * INI machinery as refuge.conf (core/config.c), so every error names
 * file:line:key. Checks the generic loader cannot express (whole seconds,
 * colour syntax, LDAP URL and filter shape, mutually exclusive keys) run
 * after it, with line numbers taken from a map that the ${region.KEY} pass
 * builds while it walks the lines.
 *
 * Region references are resolved before parsing, so a typed key (a
 * duration, a URL) may be given from [region] too. They are not a template
 * language: only ${region.KEY} is understood, anywhere in a value; any other
 * "${" is an error, and so is an unknown KEY. Comments are left alone.
 */
#include "artifacts/artifacts.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "identity/tenant.h"

/* ------------------------------------------------------------------------ */
/* Names and digests                                                        */
/* ------------------------------------------------------------------------ */

static bool has_suffix(const char *s, size_t n, const char *suf)
{
    size_t m = strlen(suf);

    return n >= m && memcmp(s + n - m, suf, m) == 0;
}

int artifact_fname_class(const char *fname, char name[ARTIFACT_NAME_MAX + 1])
{
    size_t n = strlen(fname), base;

    if (n == 0 || fname[0] == '.' || fname[n - 1] == '~' || fname[0] == '#')
        return 0;               /* hidden, emacs .#lock and #autosave#, backups */
    if (!has_suffix(fname, n, ".conf"))
        return 0;
    base = n - 5;
    if (base == 0 || base > ARTIFACT_NAME_MAX)
        return -1;
    memcpy(name, fname, base);
    name[base] = '\0';
    return tenant_name_valid(name) ? 1 : -1;
}

const char *artifact_kind_dir(enum artifact_kind k)
{
    switch (k) {
    case ARTIFACT_TENANT:
        return "tenants";
    case ARTIFACT_USERSTORE:
        return "userstores";
    case ARTIFACT_NONE:
        break;
    }
    return NULL;
}

enum artifact_kind artifact_path_parse(const char *path, char name[ARTIFACT_NAME_MAX + 1])
{
    static const enum artifact_kind kinds[] = { ARTIFACT_TENANT, ARTIFACT_USERSTORE };
    size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        const char *dir = artifact_kind_dir(kinds[i]);
        size_t dl = strlen(dir);

        if (strncmp(path, dir, dl) != 0 || path[dl] != '/')
            continue;
        /* the rest is one file name: no further '/', valid NAME.conf */
        if (strchr(path + dl + 1, '/'))
            return ARTIFACT_NONE;
        return artifact_fname_class(path + dl + 1, name) == 1 ? kinds[i] : ARTIFACT_NONE;
    }
    return ARTIFACT_NONE;
}

void artifact_sha256_hex(const void *p, size_t n, char out[ARTIFACT_SHA_HEX])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;

    if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        abort();        /* SHA-256 is always there in OpenSSL 3: a broken library */
    for (i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

/* ------------------------------------------------------------------------ */
/* ${region.KEY} resolution and the key -> line map                         */
/* ------------------------------------------------------------------------ */

#define REF_KEY_MAX 128
#define MAP_NAME_MAX 64

/* One `key = value` line as the region pass saw it (after substitution). */
struct keyline {
    char section[MAP_NAME_MAX];
    char key[MAP_NAME_MAX];
    int line;
    size_t voff, vlen;          /* value (trimmed, inline comment cut) in the output */
};

struct keymap {
    struct keyline *items;
    size_t n, cap;
    const char *text;           /* the resolved text the offsets point into */
};

static void keymap_free(struct keymap *m)
{
    free(m->items);
    memset(m, 0, sizeof(*m));
}

static const struct keyline *keymap_find(const struct keymap *m, const char *section, const char *key)
{
    size_t i;

    for (i = m->n; i-- > 0;)
        if (strcmp(m->items[i].section, section) == 0 && strcmp(m->items[i].key, key) == 0)
            return &m->items[i];
    return NULL;
}

static int keymap_line(const struct keymap *m, const char *section, const char *key)
{
    const struct keyline *k = keymap_find(m, section, key);

    return k ? k->line : 0;
}

static void copy_name(char *dst, struct str s)
{
    size_t n = s.len < MAP_NAME_MAX - 1 ? s.len : MAP_NAME_MAX - 1;

    memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static void __attribute__((format(printf, 6, 7)))
set_error(struct cfg_error *err, const char *file, int line, const char *section, const char *key,
          const char *fmt, ...)
{
    va_list ap;

    memset(err, 0, sizeof(*err));
    snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
    err->line = line;
    if (section && *section && key && *key)
        snprintf(err->key, sizeof(err->key), "%s.%s", section, key);
    else if (section && *section)
        snprintf(err->key, sizeof(err->key), "%s", section);
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool ref_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* Appends value bytes v[0..n) with references replaced. -1 with err set. */
static int resolve_value(struct buf *out, const char *v, size_t n, const struct cfg_kvlist *region,
                         const char *path, int lineno, const char *section, const char *key,
                         bool *used, struct cfg_error *err)
{
    static const char prefix[] = "region.";
    size_t i = 0;

    while (i < n) {
        const char *d = memchr(v + i, '$', n - i);
        size_t at, kstart, kend;
        char ref[REF_KEY_MAX + 1];
        const char *val;

        if (!d) {
            if (buf_append(out, v + i, n - i) < 0)
                goto too_big;
            break;
        }
        at = (size_t)(d - v);
        if (buf_append(out, v + i, at - i) < 0)
            goto too_big;
        if (at + 1 >= n || v[at + 1] != '{') {
            if (buf_putc(out, '$') < 0)
                goto too_big;
            i = at + 1;
            continue;
        }
        kstart = at + 2;
        if (n - kstart < sizeof(prefix) - 1 || memcmp(v + kstart, prefix, sizeof(prefix) - 1) != 0) {
            set_error(err, path, lineno, section, key,
                      "unsupported reference: only ${region.KEY} is understood");
            return -1;
        }
        kstart += sizeof(prefix) - 1;
        for (kend = kstart; kend < n && ref_key_char(v[kend]); kend++)
            ;
        if (kend == n || v[kend] != '}' || kend == kstart) {
            set_error(err, path, lineno, section, key,
                      "malformed reference: expected ${region.KEY} with KEY of letters, digits, "
                      "'_', '-', '.'");
            return -1;
        }
        if (kend - kstart > REF_KEY_MAX) {
            set_error(err, path, lineno, section, key, "reference name longer than %d bytes",
                      REF_KEY_MAX);
            return -1;
        }
        memcpy(ref, v + kstart, kend - kstart);
        ref[kend - kstart] = '\0';
        val = cfg_kvlist_get(region, ref);
        if (!val) {
            set_error(err, path, lineno, section, key,
                      "unresolved reference ${region.%s}: no key %s in [region] of this node's "
                      "refuge.conf",
                      ref, ref);
            return -1;
        }
        if (buf_puts(out, val) < 0)
            goto too_big;
        *used = true;
        i = kend + 1;
    }
    return 0;
too_big:
    set_error(err, path, lineno, section, key,
              "file is larger than %d bytes after ${region.KEY} substitution", ARTIFACT_MAX_BYTES);
    return -1;
}

/* Where a value ends: at an inline comment (';' after whitespace), else n. */
static size_t value_end(const char *v, size_t n)
{
    size_t i;

    for (i = 1; i < n; i++)
        if (v[i] == ';' && is_ws(v[i - 1]))
            return i;
    return n;
}

static int resolve(const char *path, const char *text, size_t len, const struct cfg_kvlist *region,
                   char **out, size_t *outlen, bool *used, struct keymap *map, struct cfg_error *err)
{
    struct buf b;
    char section[MAP_NAME_MAX] = "";
    size_t pos = 0;
    int lineno = 0, rc = -1;

    *used = false;
    *out = NULL;
    *outlen = 0;
    buf_init(&b, ARTIFACT_MAX_BYTES);
    if (len > ARTIFACT_MAX_BYTES) {
        set_error(err, path, 0, NULL, NULL, "file is larger than %d bytes", ARTIFACT_MAX_BYTES);
        goto out;
    }
    while (pos < len) {
        const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) + 1 : len - pos;   /* with terminator */
        size_t content = n, s = 0, sep, vstart, vend, cut, outv;
        char key[MAP_NAME_MAX];

        pos += n;
        lineno++;
        while (content > 0 && (line[content - 1] == '\n' || line[content - 1] == '\r'))
            content--;
        if (lineno == 1 && content >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
            s = 3;
        while (s < content && (is_ws(line[s]) || line[s] == '\n'))
            s++;
        if (s == content || line[s] == ';' || line[s] == '#') {
            if (buf_append(&b, line, n) < 0)
                goto too_big;
            continue;
        }
        if (line[s] == '[') {
            const char *close = memchr(line + s, ']', content - s);
            if (close)
                copy_name(section, str_trim((struct str){ line + s + 1, (size_t)(close - line - s - 1) }));
            if (buf_append(&b, line, n) < 0)
                goto too_big;
            continue;
        }
        for (sep = s; sep < content && line[sep] != '=' && line[sep] != ':'; sep++)
            ;
        if (sep == content) {           /* not key = value: the loader reports it */
            if (buf_append(&b, line, n) < 0)
                goto too_big;
            continue;
        }
        copy_name(key, str_trim((struct str){ line + s, sep - s }));
        if (buf_append(&b, line, sep + 1) < 0)
            goto too_big;
        vstart = sep + 1;
        cut = vstart + value_end(line + vstart, content - vstart);
        outv = b.len;
        if (resolve_value(&b, line + vstart, cut - vstart, region, path, lineno, section, key, used,
                          err) < 0)
            goto out;
        vend = b.len;
        if (buf_append(&b, line + cut, n - cut) < 0)
            goto too_big;
        if (map) {
            struct keyline *k;
            struct str v;

            if (map->n == map->cap) {
                map->cap = map->cap ? map->cap * 2 : 16;
                map->items = xrealloc(map->items, map->cap * sizeof(*map->items));
            }
            k = &map->items[map->n++];
            memcpy(k->section, section, sizeof(k->section));
            memcpy(k->key, key, sizeof(k->key));
            k->line = lineno;
            v = str_trim((struct str){ b.data + outv, vend - outv });
            k->voff = (size_t)(v.p - b.data);
            k->vlen = v.len;
        }
    }
    *outlen = b.len;
    *out = buf_steal(&b);
    if (!*out)
        *out = xstrdup("");
    if (map)
        map->text = *out;
    rc = 0;
    goto out;
too_big:
    set_error(err, path, lineno, NULL, NULL,
              "file is larger than %d bytes after ${region.KEY} substitution", ARTIFACT_MAX_BYTES);
out:
    buf_free(&b);
    return rc;
}

int artifact_region_resolve(const char *path, const char *text, size_t len,
                            const struct cfg_kvlist *region, char **out, size_t *outlen, bool *used,
                            struct cfg_error *err)
{
    struct cfg_error scratch;

    return resolve(path, text, len, region, out, outlen, used, NULL, err ? err : &scratch);
}

/* ------------------------------------------------------------------------ */
/* Checks shared by both schemas                                            */
/* ------------------------------------------------------------------------ */

/* The value of a present key as resolved text (NUL-terminated copy in buf). */
static bool key_value(const struct keymap *m, const char *section, const char *key, char *buf,
                      size_t buflen)
{
    const struct keyline *k = keymap_find(m, section, key);
    size_t n;

    if (!k)
        return false;
    n = k->vlen < buflen - 1 ? k->vlen : buflen - 1;
    memcpy(buf, m->text + k->voff, n);
    buf[n] = '\0';
    return true;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool printable_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* A duration in seconds needs a unit: a bare number would be read as ms. */
static int check_unit(const struct keymap *m, const char *path, const char *section,
                      const char *key, struct cfg_error *err)
{
    char v[32];

    if (!key_value(m, section, key, v, sizeof(v)) || !all_digits(v))
        return 0;
    set_error(err, path, keymap_line(m, section, key), section, key,
              "needs a unit (\"%ss\", or m, h, d): a bare number would be milliseconds", v);
    return -1;
}

/* A duration key that is present must be whole seconds. */
static int check_seconds(const struct keymap *m, const char *path, const char *section,
                         const char *key, int64_t ms, struct cfg_error *err)
{
    if (!keymap_find(m, section, key))
        return 0;
    if (ms % 1000 != 0) {
        set_error(err, path, keymap_line(m, section, key), section, key,
                  "must be a whole number of seconds");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* tenants/NAME.conf                                                        */
/* ------------------------------------------------------------------------ */

struct tenant_file {
    char *display_name;
    int64_t access_token_ttl, refresh_token_ttl, id_token_ttl, code_ttl, session_ttl;
    char *grant_types;
    int64_t min_length;
    bool require_upper, require_lower, require_digit, require_symbol;
    int64_t max_failures;
    int64_t lockout_duration;
    char *title, *primary_color, *logo_url, *footer_text;
};

#define TOFF(m) offsetof(struct tenant_file, m)
#define TTL_MS ((int64_t)TENANT_TTL_MAX * 1000)
#define TK(sec, name, type, field, min, max, req, help) \
    { sec, name, type, TOFF(field), NULL, min, max, NULL, req, help }

static const struct cfg_key tenant_keys[] = {
    TK("tenant", "display_name", CFG_STRING, display_name, 1, TENANT_DISPLAY_NAME_MAX, true,
       "the tenant's name as people see it"),
    TK("tokens", "access_token_ttl", CFG_DURATION, access_token_ttl, 1000, TTL_MS, false,
       "access token lifetime (whole seconds, with a unit)"),
    TK("tokens", "refresh_token_ttl", CFG_DURATION, refresh_token_ttl, 1000, TTL_MS, false,
       "refresh token lifetime"),
    TK("tokens", "id_token_ttl", CFG_DURATION, id_token_ttl, 1000, TTL_MS, false, "ID token lifetime"),
    TK("tokens", "code_ttl", CFG_DURATION, code_ttl, 1000, 600000, false,
       "authorization code lifetime (at most 10m)"),
    TK("tokens", "session_ttl", CFG_DURATION, session_ttl, 1000, TTL_MS, false,
       "SSO session lifetime"),
    TK("tokens", "grant_types", CFG_STRING, grant_types, 0, 256, false,
       "comma list: client_credentials, password, refresh_token, authorization_code"),
    TK("password", "min_length", CFG_INT, min_length, 1, 1024, false, "minimum password length"),
    TK("password", "require_upper", CFG_BOOL, require_upper, 0, 0, false, "needs an upper-case letter"),
    TK("password", "require_lower", CFG_BOOL, require_lower, 0, 0, false, "needs a lower-case letter"),
    TK("password", "require_digit", CFG_BOOL, require_digit, 0, 0, false, "needs a digit"),
    TK("password", "require_symbol", CFG_BOOL, require_symbol, 0, 0, false, "needs a symbol"),
    TK("lockout", "max_failures", CFG_INT, max_failures, 0, 100, false,
       "failed logins before lockout (0 disables)"),
    TK("lockout", "duration", CFG_DURATION, lockout_duration, 1000, TTL_MS, false,
       "how long a locked account stays locked"),
    TK("branding", "title", CFG_STRING, title, 1, 256, false, "login page title"),
    TK("branding", "primary_color", CFG_STRING, primary_color, 7, 7, false, "#rrggbb"),
    TK("branding", "logo_url", CFG_URL, logo_url, 0, 2048, false, "logo image URL"),
    TK("branding", "footer_text", CFG_STRING, footer_text, 1, 1024, false, "login page footer"),
};

static const struct cfg_schema tenant_schema = {
    tenant_keys, sizeof(tenant_keys) / sizeof(tenant_keys[0]),
};

static bool hex_color(const char *s)
{
    size_t i;

    if (strlen(s) != 7 || s[0] != '#')
        return false;
    for (i = 1; i < 7; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* "a, b" -> ["a","b"]; -1 with err on an unknown or repeated name. */
static int parse_grant_list(const char *path, const struct keymap *m, const char *list, json_t **out,
                            struct cfg_error *err)
{
    struct str rest = str_from_cstr(list), item;
    int line = keymap_line(m, "tokens", "grant_types");
    unsigned seen = 0;
    json_t *arr = json_array();

    while (rest.len) {
        char name[64];
        unsigned bit;

        if (!str_split(rest, ',', &item, &rest))
            rest = STR_NULL;
        item = str_trim(item);
        if (item.len == 0 || item.len >= sizeof(name)) {
            set_error(err, path, line, "tokens", "grant_types",
                      item.len ? "unknown grant type" : "empty entry in the list");
            goto fail;
        }
        memcpy(name, item.p, item.len);
        name[item.len] = '\0';
        bit = grant_bit(name);
        if (!bit) {
            set_error(err, path, line, "tokens", "grant_types",
                      "unknown grant type \"%s\" (client_credentials, password, refresh_token, "
                      "authorization_code)",
                      name);
            goto fail;
        }
        if (seen & bit) {
            set_error(err, path, line, "tokens", "grant_types", "grant type \"%s\" listed twice", name);
            goto fail;
        }
        seen |= bit;
        json_array_append_new(arr, json_string(name));
    }
    *out = arr;
    return 0;
fail:
    json_decref(arr);
    return -1;
}

static void set_secs(json_t *obj, const char *key, int64_t ms)
{
    json_object_set_new(obj, key, json_integer(ms / 1000));
}

static char *steal(char **p)
{
    char *s = *p;

    *p = NULL;
    return s;
}

int artifact_tenant_parse(const char *path, const char *text, size_t len,
                          const struct cfg_kvlist *region, struct artifact_tenant *out,
                          struct cfg_error *err)
{
    static const struct { const char *key; size_t off; } ttls[] = {
        { "access_token_ttl", TOFF(access_token_ttl) }, { "refresh_token_ttl", TOFF(refresh_token_ttl) },
        { "id_token_ttl", TOFF(id_token_ttl) },         { "code_ttl", TOFF(code_ttl) },
        { "session_ttl", TOFF(session_ttl) },
    };
    static const struct { const char *key; size_t off; } reqs[] = {
        { "require_upper", TOFF(require_upper) }, { "require_lower", TOFF(require_lower) },
        { "require_digit", TOFF(require_digit) }, { "require_symbol", TOFF(require_symbol) },
    };
    struct cfg_error scratch;
    struct tenant_file tf;
    struct keymap map = { 0 };
    struct tenant_settings ts;
    json_t *settings = NULL, *pw = NULL, *lo = NULL, *grants = NULL;
    char *resolved = NULL, msg[256];
    size_t rlen, i;
    bool used;
    int rc = -1;

    if (!err)
        err = &scratch;
    memset(out, 0, sizeof(*out));
    memset(&tf, 0, sizeof(tf));
    if (resolve(path, text, len, region, &resolved, &rlen, &used, &map, err) < 0)
        goto out;
    out->uses_region = used;
    /* before the loader, whose range message would read "got 3600" for 3600 ms */
    for (i = 0; i < sizeof(ttls) / sizeof(ttls[0]); i++)
        if (check_unit(&map, path, "tokens", ttls[i].key, err) < 0)
            goto out;
    if (check_unit(&map, path, "lockout", "duration", err) < 0)
        goto out;
    if (cfg_load_string(&tenant_schema, path, resolved, rlen, &tf, err) < 0)
        goto out;

    if (!tenant_display_name_valid(tf.display_name)) {
        set_error(err, path, keymap_line(&map, "tenant", "display_name"), "tenant", "display_name",
                  "must be 1..%d bytes without control characters", TENANT_DISPLAY_NAME_MAX);
        goto out;
    }
    settings = json_object();
    for (i = 0; i < sizeof(ttls) / sizeof(ttls[0]); i++) {
        int64_t ms = *(int64_t *)(void *)((char *)&tf + ttls[i].off);
        if (!keymap_find(&map, "tokens", ttls[i].key))
            continue;
        if (check_seconds(&map, path, "tokens", ttls[i].key, ms, err) < 0)
            goto out;
        set_secs(settings, ttls[i].key, ms);
    }
    if (keymap_find(&map, "tokens", "grant_types")) {
        if (parse_grant_list(path, &map, tf.grant_types, &grants, err) < 0)
            goto out;
        json_object_set_new(settings, "grant_types", grants);
    }
    pw = json_object();
    if (keymap_find(&map, "password", "min_length"))
        json_object_set_new(pw, "min_length", json_integer(tf.min_length));
    for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
        if (keymap_find(&map, "password", reqs[i].key))
            json_object_set_new(pw, reqs[i].key,
                                json_boolean(*(bool *)(void *)((char *)&tf + reqs[i].off)));
    if (json_object_size(pw))
        json_object_set(settings, "password_policy", pw);
    lo = json_object();
    if (keymap_find(&map, "lockout", "max_failures"))
        json_object_set_new(lo, "max_failures", json_integer(tf.max_failures));
    if (keymap_find(&map, "lockout", "duration")) {
        if (check_seconds(&map, path, "lockout", "duration", tf.lockout_duration, err) < 0)
            goto out;
        set_secs(lo, "duration", tf.lockout_duration);
    }
    if (json_object_size(lo))
        json_object_set(settings, "lockout", lo);

    if (tf.title && !printable_text(tf.title)) {
        set_error(err, path, keymap_line(&map, "branding", "title"), "branding", "title",
                  "must not contain control characters");
        goto out;
    }
    if (tf.footer_text && !printable_text(tf.footer_text)) {
        set_error(err, path, keymap_line(&map, "branding", "footer_text"), "branding",
                  "footer_text", "must not contain control characters");
        goto out;
    }
    if (tf.primary_color && !hex_color(tf.primary_color)) {
        set_error(err, path, keymap_line(&map, "branding", "primary_color"), "branding",
                  "primary_color", "must be a colour as #rrggbb");
        goto out;
    }
    /* The bounds above mirror identity/tenant.c; this is the last word. */
    if (tenant_settings_parse(settings, &ts, msg, sizeof(msg)) < 0) {
        set_error(err, path, 0, NULL, NULL, "%s", msg);
        goto out;
    }
    out->display_name = steal(&tf.display_name);
    out->title = steal(&tf.title);
    out->primary_color = steal(&tf.primary_color);
    out->logo_url = steal(&tf.logo_url);
    out->footer_text = steal(&tf.footer_text);
    out->settings = settings;
    settings = NULL;
    rc = 0;
out:
    json_decref(settings);
    json_decref(pw);
    json_decref(lo);
    cfg_free(&tenant_schema, &tf);
    keymap_free(&map);
    free(resolved);
    return rc;
}

void artifact_tenant_free(struct artifact_tenant *t)
{
    if (!t)
        return;
    free(t->display_name);
    free(t->title);
    free(t->primary_color);
    free(t->logo_url);
    free(t->footer_text);
    json_decref(t->settings);
    memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------------ */
/* userstores/NAME.conf                                                     */
/* ------------------------------------------------------------------------ */

static const char *const store_types[] = { "ldap", NULL };
static const char *const tls_modes[] = { "none", "ldaps", "starttls", NULL };

#define UOFF(m) offsetof(struct artifact_userstore, m)
#define UK(name, type, field, def, min, max, en, req, help) \
    { "userstore", name, type, UOFF(field), def, min, max, en, req, help }

static const struct cfg_key userstore_keys[] = {
    UK("type", CFG_ENUM, type, NULL, 0, 0, store_types, true, "userstore type: ldap"),
    UK("url", CFG_STRING, url, NULL, 1, 1024, NULL, true,
       "ldap://host[:port] or ldaps://host[:port] (several, separated by spaces)"),
    UK("bind_dn", CFG_STRING, bind_dn, NULL, 1, 1024, NULL, false, "DN to bind as"),
    UK("bind_password", CFG_STRING, bind_password, NULL, 1, 1024, NULL, false, "bind password"),
    UK("bind_password_file", CFG_PATH, bind_password_file, NULL, 1, 4096, NULL, false,
       "file holding the bind password"),
    UK("user_base", CFG_STRING, user_base, NULL, 1, 1024, NULL, true, "search base for users"),
    UK("user_filter", CFG_STRING, user_filter, "(objectClass=inetOrgPerson)", 2, 1024, NULL, false,
       "LDAP filter selecting users"),
    UK("attr_username", CFG_STRING, attr_username, "uid", 1, 128, NULL, false, "user name attribute"),
    UK("attr_email", CFG_STRING, attr_email, "mail", 1, 128, NULL, false, "e-mail attribute"),
    UK("attr_name", CFG_STRING, attr_name, "cn", 1, 128, NULL, false, "display name attribute"),
    UK("attr_groups", CFG_STRING, attr_groups, "memberOf", 1, 128, NULL, false, "groups attribute"),
    UK("tls", CFG_ENUM, tls, NULL, 0, 0, tls_modes, false,
       "none, ldaps or starttls (default: from the url scheme)"),
    UK("ca_file", CFG_PATH, ca_file, NULL, 1, 4096, NULL, false, "CA bundle for the server certificate"),
    UK("timeout", CFG_DURATION, timeout_ms, "5s", 100, 60000, NULL, false, "operation timeout"),
    UK("pool_size", CFG_INT, pool_size, "4", 1, 64, NULL, false, "connections per node"),
    UK("read_only", CFG_BOOL, read_only, "true", 0, 0, NULL, false, "never write to the directory"),
    UK("tenant", CFG_STRING, tenant, "default", 1, ARTIFACT_NAME_MAX, NULL, false,
       "the tenant whose users sign in through this store as NAME/username"),
};

static const struct cfg_schema userstore_schema = {
    userstore_keys, sizeof(userstore_keys) / sizeof(userstore_keys[0]),
};

/* One ldap[s]://host[:port][/] URL; *ldaps says which scheme. */
static bool ldap_url(struct str u, bool *ldaps)
{
    struct str hp;
    size_t i;

    if (str_has_prefix(u, "ldaps://")) {
        *ldaps = true;
        hp = (struct str){ u.p + 8, u.len - 8 };
    } else if (str_has_prefix(u, "ldap://")) {
        *ldaps = false;
        hp = (struct str){ u.p + 7, u.len - 7 };
    } else {
        return false;
    }
    if (hp.len && hp.p[hp.len - 1] == '/')
        hp.len--;
    if (hp.len == 0 || hp.len > 260)
        return false;
    if (hp.p[0] == '[') {
        const char *close = memchr(hp.p, ']', hp.len);
        if (!close || close == hp.p + 1)
            return false;
        for (const char *c = hp.p + 1; c < close; c++)
            if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || (*c >= 'A' && *c <= 'F') ||
                  *c == ':' || *c == '.'))
                return false;
        i = (size_t)(close - hp.p) + 1;
    } else {
        for (i = 0; i < hp.len && hp.p[i] != ':'; i++) {
            char c = hp.p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_'))
                return false;
        }
        if (i == 0)
            return false;
    }
    if (i == hp.len)
        return true;
    if (hp.p[i] != ':' || hp.len - i - 1 == 0 || hp.len - i - 1 > 5)
        return false;
    {
        int64_t port;
        return str_to_i64((struct str){ hp.p + i + 1, hp.len - i - 1 }, 1, 65535, &port) == 0;
    }
}

/* Balanced parentheses, starting with '(' and ending with the matching ')'. */
static bool ldap_filter_shape(const char *f)
{
    int depth = 0;
    size_t i, n = strlen(f);

    if (n < 2 || f[0] != '(' || f[n - 1] != ')')
        return false;
    for (i = 0; i < n; i++) {
        if (f[i] == '(')
            depth++;
        else if (f[i] == ')' && --depth == 0 && i != n - 1)
            return false;
        if (depth < 0 || (unsigned char)f[i] < 0x20)
            return false;
    }
    return depth == 0;
}

/* An attribute description: a name (letter, then letters/digits/'-') or a numeric OID. */
static bool ldap_attr(const char *a)
{
    size_t i;

    if (a[0] >= '0' && a[0] <= '9') {
        for (i = 0; a[i]; i++)
            if (!((a[i] >= '0' && a[i] <= '9') || a[i] == '.'))
                return false;
        return a[i - 1] != '.';
    }
    if (!((a[0] >= 'a' && a[0] <= 'z') || (a[0] >= 'A' && a[0] <= 'Z')))
        return false;
    for (i = 1; a[i]; i++)
        if (!((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') ||
              (a[i] >= '0' && a[i] <= '9') || a[i] == '-'))
            return false;
    return true;
}

static int userstore_check(const char *path, const struct keymap *m, struct artifact_userstore *u,
                           struct cfg_error *err)
{
    static const struct { const char *key; size_t off; } attrs[] = {
        { "attr_username", UOFF(attr_username) }, { "attr_email", UOFF(attr_email) },
        { "attr_name", UOFF(attr_name) },         { "attr_groups", UOFF(attr_groups) },
    };
    struct str rest = str_from_cstr(u->url), one;
    bool first = true, ldaps = false, scheme_ldaps = false;
    size_t i;

#define FAIL(key, ...)                                                                       \
    do {                                                                                     \
        set_error(err, path, keymap_line(m, "userstore", key), "userstore", key, __VA_ARGS__); \
        return -1;                                                                           \
    } while (0)

    while (rest.len) {
        if (!str_split(rest, ' ', &one, &rest))
            rest = STR_NULL;
        if (one.len == 0)
            continue;
        if (!ldap_url(one, &ldaps))
            FAIL("url", "must be ldap://host[:port] or ldaps://host[:port] (several separated "
                        "by spaces)");
        if (!first && ldaps != scheme_ldaps)
            FAIL("url", "all URLs must use the same scheme");
        scheme_ldaps = ldaps;
        first = false;
    }
    if (first)
        FAIL("url", "must name at least one ldap:// or ldaps:// URL");
    if (keymap_find(m, "userstore", "tls")) {
        if (u->tls == ARTIFACT_TLS_LDAPS && !scheme_ldaps)
            FAIL("tls", "tls = ldaps needs ldaps:// URLs");
        if (u->tls != ARTIFACT_TLS_LDAPS && scheme_ldaps)
            FAIL("tls", "ldaps:// URLs need tls = ldaps (or no tls key)");
    } else {
        u->tls = scheme_ldaps ? ARTIFACT_TLS_LDAPS : ARTIFACT_TLS_NONE;
    }
    if (u->ca_file && u->tls == ARTIFACT_TLS_NONE)
        FAIL("ca_file", "needs tls = ldaps or starttls");
    if (u->bind_password && u->bind_password_file)
        FAIL(keymap_line(m, "userstore", "bind_password") > keymap_line(m, "userstore", "bind_password_file")
                 ? "bind_password"
                 : "bind_password_file",
             "bind_password and bind_password_file are mutually exclusive");
    if ((u->bind_password || u->bind_password_file) && !u->bind_dn)
        FAIL(u->bind_password ? "bind_password" : "bind_password_file", "needs bind_dn");
    if (u->bind_dn && !strchr(u->bind_dn, '='))
        FAIL("bind_dn", "must be a DN (attr=value,...)");
    if (!strchr(u->user_base, '='))
        FAIL("user_base", "must be a DN (attr=value,...)");
    if (!http_tenant_name_valid(u->tenant, strlen(u->tenant)))
        FAIL("tenant", "must be a tenant name (a lowercase DNS label: a-z, 0-9, '-')");
    if (!ldap_filter_shape(u->user_filter))
        FAIL("user_filter", "must be an LDAP filter in parentheses, e.g. (objectClass=person)");
    for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
        if (!ldap_attr(*(char **)(void *)((char *)u + attrs[i].off)))
            FAIL(attrs[i].key, "must be an attribute name or OID");
#undef FAIL
    return 0;
}

int artifact_userstore_parse(const char *path, const char *text, size_t len,
                             const struct cfg_kvlist *region, struct artifact_userstore *out,
                             struct cfg_error *err)
{
    struct cfg_error scratch;
    struct keymap map = { 0 };
    char *resolved = NULL;
    size_t rlen;
    bool used;
    int rc = -1;

    if (!err)
        err = &scratch;
    memset(out, 0, sizeof(*out));
    if (resolve(path, text, len, region, &resolved, &rlen, &used, &map, err) < 0)
        goto out;
    if (cfg_load_string(&userstore_schema, path, resolved, rlen, out, err) < 0)
        goto out;
    out->uses_region = used;
    if (userstore_check(path, &map, out, err) < 0)
        goto out;
    rc = 0;
out:
    keymap_free(&map);
    free(resolved);
    return rc;
}

void artifact_userstore_free(struct artifact_userstore *u)
{
    if (!u)
        return;
    cfg_free(&userstore_schema, u);
    memset(u, 0, sizeof(*u));
}

int artifact_validate(const char *path, const char *text, size_t len,
                      const struct cfg_kvlist *region, struct cfg_error *err)
{
    struct cfg_error scratch;
    char name[ARTIFACT_NAME_MAX + 1];
    int rc = -1;

    if (!err)
        err = &scratch;
    switch (artifact_path_parse(path, name)) {
    case ARTIFACT_TENANT: {
        struct artifact_tenant t;
        rc = artifact_tenant_parse(path, text, len, region, &t, err);
        artifact_tenant_free(&t);
        break;
    }
    case ARTIFACT_USERSTORE: {
        struct artifact_userstore u;
        rc = artifact_userstore_parse(path, text, len, region, &u, err);
        artifact_userstore_free(&u);
        break;
    }
    case ARTIFACT_NONE:
        set_error(err, path, 0, NULL, NULL,
                  "not an artifact path: expected tenants/NAME.conf or userstores/NAME.conf with "
                  "NAME a lowercase DNS label");
        break;
    }
    return rc;
}
