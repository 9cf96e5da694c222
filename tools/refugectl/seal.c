/*
 * refugectl seal-secret — turns a secret into a value that is safe to keep
 * in a replicated artifact: "sealed:" + AES-256-GCM under the deployment's
 * master key (ldap/userstore.h, userstore_seal_password). Today that is a
 * userstore's bind_password; refuged opens it at load time with its own
 * master key, which is the same file in every region.
 *
 *   refugectl seal-secret --master-key FILE < secret
 *
 * The secret comes from stdin, never from the command line (which other
 * users can read in /proc); one final newline is dropped. When stdin is a
 * terminal, echo is turned off while it is typed. The master key file is
 * only read: a missing file is an error, never a new key (a new key would
 * seal a secret no node can open).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "crypto/master.h"
#include "crypto/secret.h"
#include "ldap/userstore.h"
#include "refugectl.h"

void ctl_seal_usage(FILE *f)
{
    fprintf(f, "refugectl seal-secret --master-key FILE\n"
               "    read a secret (e.g. an LDAP bind password, 1..%d bytes) from stdin and print\n"
               "    it sealed with the master key in FILE (the nodes' [node] master_key_file), as\n"
               "    \"sealed:...\" for a userstore's bind_password. FILE is never created.\n",
               USERSTORE_PASSWORD_MAX);
}

/* Reads all of stdin (at most max bytes; one more means too long). -1 on a read error. */
static ssize_t read_secret(char *buf, size_t max)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    size_t n = 0;
    ssize_t rc = 0;

    if (tty) {
        fprintf(stderr, "secret: ");
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    while (n < max + 1) {
        ssize_t got = read(STDIN_FILENO, buf + n, max + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (tty && memchr(buf + n - (size_t)got, '\n', (size_t)got))
            break;                          /* a terminal ends the secret with Enter */
    }
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    return rc < 0 ? rc : (ssize_t)n;
}

int ctl_seal_run(int argc, char **argv)
{
    char secret[USERSTORE_PASSWORD_MAX + 2], err[512];
    unsigned char key[CRYPTO_MASTER_KEY_LEN];
    const char *key_path = NULL, *v;
    char *sealed = NULL;
    struct stat stb;
    bool created = false;
    int missing = 0, rc = CTL_FAIL;
    ssize_t n;

    for (int i = 1; i < argc; i++) {
        if ((v = ctl_opt_value(argc, argv, &i, "--master-key", &missing))) {
            key_path = v;
            continue;
        }
        if (!missing)
            fprintf(stderr, "refugectl: seal-secret: unexpected argument '%s'\n", argv[i]);
        key_path = NULL;
        break;
    }
    if (!key_path) {
        ctl_seal_usage(stderr);
        return CTL_USAGE;
    }
    if (lstat(key_path, &stb) != 0) {
        fprintf(stderr, "refugectl: seal-secret: master key %s: %s\n", key_path, strerror(errno));
        return CTL_FAIL;
    }
    n = read_secret(secret, USERSTORE_PASSWORD_MAX + 1);
    if (n < 0) {
        fprintf(stderr, "refugectl: seal-secret: reading stdin: %s\n", strerror(errno));
        goto out;
    }
    if (n > 0 && secret[n - 1] == '\n')
        n--;
    if (n > 0 && secret[n - 1] == '\r')
        n--;
    if (n == 0 || n > USERSTORE_PASSWORD_MAX || memchr(secret, '\0', (size_t)n)) {
        fprintf(stderr, "refugectl: seal-secret: expected a secret of 1..%d bytes (no NUL) on stdin\n",
                USERSTORE_PASSWORD_MAX);
        rc = CTL_USAGE;
        goto out;
    }
    /* the same checks refuged makes (regular file, 0600, 32 bytes, no symlink) */
    if (crypto_master_load_or_create(key_path, key, &created, err, sizeof(err)) < 0) {
        fprintf(stderr, "refugectl: seal-secret: %s\n", err);
        goto out;
    }
    if (created) {                          /* replaced under our feet between lstat and open */
        fprintf(stderr, "refugectl: seal-secret: master key %s did not exist\n", key_path);
        unlink(key_path);
        goto out;
    }
    if (userstore_seal_password(key, secret, (size_t)n, &sealed) < 0) {
        fprintf(stderr, "refugectl: seal-secret: sealing failed\n");
        goto out;
    }
    printf("%s\n", sealed);
    rc = fflush(stdout) == 0 ? CTL_OK : CTL_FAIL;
out:
    free(sealed);
    crypto_wipe(key, sizeof(key));
    crypto_wipe(secret, sizeof(secret));
    return rc;
}
