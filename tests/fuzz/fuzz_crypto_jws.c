/*
 * fuzz_crypto_jws — arbitrary bytes into crypto_jws_verify, the parser every
 * bearer token from the network goes through, with a fixed key set: one
 * ES256 key (test-only, generated for this target; the corpus tokens are
 * signed with it) and the RFC 8037 Ed25519 test key. Invariants checked on
 * every input: the call never crashes or leaks, success returns two JSON
 * objects, failure returns none, and a success can only come from a token
 * whose header names a key of the set.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/jws.h"
#include "crypto/keys.h"

/* Test-only keys: never use them anywhere else. */
static const char *const jwks[] = {
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"yv6TaiUcM7VSij9aiSs6GSm3it1NLRQ1O7Bsu9-Gxms\","
    "\"y\":\"d5aeeAzcXYKTz4FA8P7cOfR-wq2u1KY8Al8DhLCvt7g\","
    "\"d\":\"ZnksevqsAo7qczyM3IKidzFxTd2fBNwcbnpSEIu7OZo\","
    "\"kid\":\"Ukzh4tbrKXX1ui2Y48recYMBm8d9SFgdf9E8Z6iLfrc\",\"alg\":\"ES256\",\"use\":\"sig\"}",
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\","
    "\"kid\":\"rfc8037\"}",
};
#define NKEYS (sizeof jwks / sizeof jwks[0])

static struct crypto_key *keys[NKEYS];
static struct crypto_keyset set;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (crypto_key_from_jwk(jwks[i], strlen(jwks[i]), &keys[i]) != 0) {
            fprintf(stderr, "fuzz_crypto_jws: key %zu does not load\n", i);
            abort();
        }
    }
    set.keys = (const struct crypto_key *const *)keys;
    set.n = NKEYS;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *payload = (json_t *)1, *header = (json_t *)1;
    int rc = crypto_jws_verify((const char *)data, size, crypto_keyset_find, &set, 0,
                               &payload, &header);

    if (rc == 0) {
        const char *kid = json_string_value(json_object_get(header, "kid"));
        if (!json_is_object(payload) || !json_is_object(header) || !kid ||
            !crypto_keyset_find(&set, kid, strlen(kid)))
            abort();
        json_decref(payload);
        json_decref(header);
    } else if (payload || header) {
        abort();
    }
    return 0;
}
