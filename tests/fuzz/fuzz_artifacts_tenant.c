/*
 * fuzz_artifacts_tenant — arbitrary bytes through the artifact validators:
 * the ${region.KEY} pass, the tenant schema and the userstore schema. On a
 * standby these bytes arrive over replication, so the parsers must never
 * crash, read out of bounds or leak; what they accept must be what the
 * tenant module accepts (the settings document parses), and every rejection
 * must name the file.
 *
 * The first byte picks the parser ('U': userstore, anything else: tenant);
 * the rest is the file.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "artifacts/artifacts.h"
#include "identity/tenant.h"

static struct cfg_kv region_items[] = {
    { "display", "Acme (fuzz)", 1 },
    { "ttl", "5m", 2 },
    { "ldap", "ldap://ldap.example:389", 3 },
    { "empty", "", 4 },
};
static const struct cfg_kvlist region = { region_items, 4 };

static void check_error(const struct cfg_error *err, const char *path)
{
    char msg[1024];

    assert(strcmp(err->file, path) == 0);
    assert(err->msg[0] != '\0');
    cfg_error_format(err, msg, sizeof(msg));
    assert(strncmp(msg, path, strlen(path)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cfg_error err;
    const char *text;
    char *out = NULL;
    size_t len, outlen = 0;
    bool used = false;

    if (size == 0)
        return 0;
    text = (const char *)data + 1;
    len = size - 1;

    if (artifact_region_resolve("fuzz.conf", text, len, &region, &out, &outlen, &used, &err) == 0) {
        assert(out && strlen(out) <= outlen);
        assert(outlen <= ARTIFACT_MAX_BYTES);
    } else {
        check_error(&err, "fuzz.conf");
        assert(out == NULL);
    }
    free(out);

    if (data[0] == 'U') {
        struct artifact_userstore u;
        if (artifact_userstore_parse("userstores/f.conf", text, len, &region, &u, &err) == 0) {
            assert(u.url && u.user_base && u.user_filter && u.attr_username);
            assert(u.tls >= ARTIFACT_TLS_NONE && u.tls <= ARTIFACT_TLS_STARTTLS);
            assert(!(u.bind_password && u.bind_password_file));
            assert(u.pool_size >= 1 && u.pool_size <= 64);
        } else {
            check_error(&err, "userstores/f.conf");
        }
        artifact_userstore_free(&u);
    } else {
        struct artifact_tenant t;
        struct tenant_settings ts;
        char msg[256];
        if (artifact_tenant_parse("tenants/f.conf", text, len, &region, &t, &err) == 0) {
            assert(t.display_name && tenant_display_name_valid(t.display_name));
            assert(tenant_settings_parse(t.settings, &ts, msg, sizeof(msg)) == 0);
        } else {
            check_error(&err, "tenants/f.conf");
        }
        artifact_tenant_free(&t);
    }
    return 0;
}
