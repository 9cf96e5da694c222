/*
 * config — INI files (libinih) checked against a schema.
 *
 * Every key a program accepts is declared once in a table of struct cfg_key:
 * its section, name, type, bounds, default and where its value is stored in
 * the caller's struct (by offset). Loading fails on the first unknown section,
 * unknown key, duplicate key, missing required key or bad value, with an error
 * that names file, line and key:
 *
 *   refuge.conf:12: http.threads: must be an integer from 1 to 256, got "lots"
 *
 * Sections marked free (like [region]) accept any key and keep them as a list
 * of (key, value) pairs. The same machinery validates refuge.conf and the
 * replicated artifact files.
 */
#ifndef REFUGE_CORE_CONFIG_H
#define REFUGE_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cfg_type {
    CFG_STRING,     /* char * (xmalloc'd); min/max bound the length */
    CFG_INT,        /* int64_t within [min, max] */
    CFG_BOOL,       /* bool: true/false/yes/no/on/off/1/0 */
    CFG_ENUM,       /* int: index into enum_values */
    CFG_DURATION,   /* int64_t milliseconds: "250ms", "5s", "2m", "1h", "1d"; bare number = ms */
    CFG_SIZE,       /* int64_t bytes: "512", "64k", "16M", "1G" (binary units) */
    CFG_LISTEN,     /* char *: "host:port" or "[v6]:port", port 1-65535 (0 allowed if min==0) */
    CFG_URL,        /* char *: http:// or https:// absolute URL without fragment */
    CFG_PATH,       /* char *: non-empty path */
    CFG_FREE,       /* marks a whole section as free-form: struct cfg_kvlist at offset */
};

struct cfg_key {
    const char *section;
    const char *name;              /* NULL for a CFG_FREE section entry */
    enum cfg_type type;
    size_t offset;                 /* where the value lives in the output struct */
    const char *def;               /* default as text (parsed like file input), or NULL */
    int64_t min, max;              /* bounds for INT/DURATION/SIZE, length for STRING */
    const char *const *enum_values;/* NULL-terminated, for CFG_ENUM */
    bool required;
    const char *help;              /* one line, printed by --help-config and docs */
};

struct cfg_schema {
    const struct cfg_key *keys;
    size_t nkeys;
};

struct cfg_kv {
    char *key;
    char *value;
    int line;
};

struct cfg_kvlist {
    struct cfg_kv *items;
    size_t n;
};

struct cfg_error {
    char file[256];
    int line;                 /* 0 when the error is not tied to a line (missing key, I/O) */
    char key[128];            /* "section.key" or "section" or "" */
    char msg[320];
};

/* Loads `path` into `out` (a struct the schema's offsets describe). Defaults
 * are applied first. Returns 0, or -1 with *err filled. On failure `out` may
 * hold partial values: release them with cfg_free() either way. */
int cfg_load_file(const struct cfg_schema *s, const char *path, void *out, struct cfg_error *err);
/* The same from memory; `name` is used as the file name in errors. */
int cfg_load_string(const struct cfg_schema *s, const char *name, const char *text, size_t len,
                    void *out, struct cfg_error *err);
/* Applies defaults only (an empty file). */
int cfg_defaults(const struct cfg_schema *s, void *out, struct cfg_error *err);
void cfg_free(const struct cfg_schema *s, void *out);
/* "file:line: key: msg" (line and key omitted when unknown). Returns out. */
const char *cfg_error_format(const struct cfg_error *err, char *out, size_t outlen);
const char *cfg_kvlist_get(const struct cfg_kvlist *l, const char *key);

/* Value parsers shared with other modules; 0 or -EINVAL/-ERANGE. */
int cfg_parse_bool(const char *s, bool *out);
int cfg_parse_duration_ms(const char *s, int64_t *out);
int cfg_parse_size(const char *s, int64_t *out);

#endif
