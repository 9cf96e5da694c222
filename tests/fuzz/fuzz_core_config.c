/*
 * fuzz_core_config — arbitrary bytes through the config loader, with a schema
 * that uses every value type, bounds, defaults, a required key and a free
 * section. The loader must never crash, read out of bounds or leak, whether
 * the input is accepted or rejected; an accepted load must hold the values
 * the schema promises. The value parsers are also fed the raw input.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

struct fz {
    char *name;
    char *data_dir;
    int role;
    char *listen;
    char *public_url;
    int64_t threads;
    int64_t body;
    int64_t lag;
    bool flag;
    int mode;
    char *label;
    char *peer;
    struct cfg_kvlist region;
    struct cfg_kvlist extra;
};

static const char *const roles[] = { "active", "standby", NULL };
static const char *const modes[] = { "async", "remote_write", "remote_apply", NULL };

#define OFF(f) offsetof(struct fz, f)

static const struct cfg_key keys[] = {
    { "node", "name", CFG_STRING, OFF(name), NULL, 1, 64, NULL, true, "" },
    { "node", "data_dir", CFG_PATH, OFF(data_dir), "/var/lib/refuge", 0, 0, NULL, false, "" },
    { "node", "initial_role", CFG_ENUM, OFF(role), "standby", 0, 0, roles, false, "" },
    { "http", "listen", CFG_LISTEN, OFF(listen), "127.0.0.1:8080", 1, 0, NULL, false, "" },
    { "http", "public_url", CFG_URL, OFF(public_url), "http://localhost:8080", 0, 2048, NULL, false, "" },
    { "http", "threads", CFG_INT, OFF(threads), "4", 1, 256, NULL, false, "" },
    { "http", "max_body_bytes", CFG_SIZE, OFF(body), "1M", 1024, 64 << 20, NULL, false, "" },
    { "replication", "max_lag_ms", CFG_DURATION, OFF(lag), "5s", 0, 3600000, NULL, false, "" },
    { "replication", "replicate_sessions", CFG_BOOL, OFF(flag), "off", 0, 0, NULL, false, "" },
    { "replication", "mode", CFG_ENUM, OFF(mode), "async", 0, 0, modes, false, "" },
    { "replication", "peer", CFG_LISTEN, OFF(peer), NULL, 0, 0, NULL, false, "" },
    { "log", "label", CFG_STRING, OFF(label), "x", 0, 0, NULL, false, "" },
    { "region", NULL, CFG_FREE, OFF(region), NULL, 0, 0, NULL, false, "" },
    { "extra", NULL, CFG_FREE, OFF(extra), NULL, 0, 0, NULL, false, "" },
};

static const struct cfg_schema schema = { keys, sizeof keys / sizeof keys[0] };

static void check_list(const struct cfg_kvlist *l)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        if (!l->items[i].key || !l->items[i].value || l->items[i].line < 1)
            abort();
        if (cfg_kvlist_get(l, l->items[i].key) != l->items[i].value)
            abort();    /* duplicates must have been refused */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz c;
    struct cfg_error err;
    char msg[1024];
    char *copy;
    int64_t v;
    bool b;

    memset(&c, 0xA5, sizeof c);
    if (cfg_load_string(&schema, "fuzz.conf", (const char *)data, size, &c, &err) == 0) {
        if (!c.name || !c.data_dir || !c.listen || !c.public_url || !c.label)
            abort();
        if (strlen(c.name) < 1 || strlen(c.name) > 64 || !*c.data_dir)
            abort();
        if (c.threads < 1 || c.threads > 256 || c.body < 1024 || c.body > (64 << 20))
            abort();
        if (c.lag < 0 || c.lag > 3600000 || c.role < 0 || c.role > 1 || c.mode < 0 || c.mode > 2)
            abort();
        check_list(&c.region);
        check_list(&c.extra);
    } else {
        cfg_error_format(&err, msg, sizeof msg);
        if (!err.msg[0])
            abort();
    }
    cfg_free(&schema, &c);
    cfg_free(&schema, &c);

    /* the shared value parsers on the raw bytes (up to the first NUL) */
    copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    (void)cfg_parse_bool(copy, &b);
    (void)cfg_parse_duration_ms(copy, &v);
    (void)cfg_parse_size(copy, &v);
    free(copy);
    return 0;
}
