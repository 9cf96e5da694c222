/*
 * json — helpers over jansson with the limits network input needs: a size
 * limit and a nesting-depth limit checked before jansson sees the bytes.
 * Module prefix jsonx_ (jansson owns json_).
 */
#ifndef REFUGE_CORE_JSON_H
#define REFUGE_CORE_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Nesting depth of a JSON text (arrays/objects, strings skipped). */
int jsonx_depth(const char *p, size_t n);
/* Parses n bytes. Returns a new reference or NULL with errmsg filled
 * ("nested deeper than 32 levels", "invalid JSON at line 1 column 5: ..."). */
json_t *jsonx_parse(const char *p, size_t n, int max_depth, char *errmsg, size_t errlen);
/* Compact, key order preserved; xmalloc'd (caller frees). */
char *jsonx_dump(const json_t *j);
/* Typed getters: return the value or the fallback when absent / wrong type. */
const char *jsonx_str(const json_t *obj, const char *key, const char *fallback);
int64_t jsonx_int(const json_t *obj, const char *key, int64_t fallback);
bool jsonx_bool(const json_t *obj, const char *key, bool fallback);

#endif
