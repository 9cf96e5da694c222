/*
 * refugectl cert — the cluster CA and node certificates for the replication
 * link. Argument handling only: the certificates are made by src/repl/certgen.c
 * (OpenSSL API, no shell-out), which the unit tests call as well.
 *
 *   refugectl cert init DIR
 *   refugectl cert issue NAME DIR [--days N] [--ip ADDR]... [--dns NAME]...
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refugectl.h"
#include "repl/certgen.h"

void ctl_cert_usage(FILE *f)
{
    fprintf(f,
            "refugectl cert init DIR\n"
            "    create DIR/ca.key (0600) and DIR/ca.crt: the cluster CA (P-256, 10 years).\n"
            "    Refuses to overwrite an existing CA.\n"
            "refugectl cert issue NAME DIR [--days N] [--ip ADDR]... [--dns HOST]...\n"
            "    create DIR/NAME.key (0600) and DIR/NAME.crt signed by DIR/ca.key:\n"
            "    CN=NAME, subjectAltName DNS:NAME plus each --ip / --dns, usable as TLS\n"
            "    server and client (default %d days). NAME is the node's [node] name.\n",
            REPL_CERT_DEFAULT_DAYS);
}

static int cert_init(int argc, char **argv)
{
    char err[512];

    if (argc != 2) {
        fprintf(stderr, "usage: refugectl cert init DIR\n");
        return CTL_USAGE;
    }
    if (repl_cert_init(argv[1], err, sizeof err) < 0) {
        fprintf(stderr, "refugectl: cert init: %s\n", err);
        return CTL_FAIL;
    }
    printf("created %s/ca.key and %s/ca.crt\n", argv[1], argv[1]);
    return CTL_OK;
}

/* Value of an option given as "--opt VALUE" or "--opt=VALUE"; NULL if argv[*i]
 * is not that option. Advances *i past a separate value. *missing is set when
 * the option is last with no value. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt, int *missing)
{
    size_t n = strlen(opt);

    if (strncmp(argv[*i], opt, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

static int cert_issue(int argc, char **argv)
{
    struct repl_cert_opts opts = { 0 };
    const char *pos[2], *v;
    int npos = 0, missing = 0;
    char err[512], *end;
    long days;

    for (int i = 1; i < argc; i++) {
        if ((v = opt_value(argc, argv, &i, "--days", &missing))) {
            errno = 0;
            days = strtol(v, &end, 10);
            if (errno || *end || end == v || days < 1 || days > 36500) {
                fprintf(stderr, "refugectl: --days wants 1..36500, got '%s'\n", v);
                return CTL_USAGE;
            }
            opts.days = (int)days;
        } else if ((v = opt_value(argc, argv, &i, "--ip", &missing))) {
            if (opts.n_ips == REPL_CERT_MAX_SAN) {
                fprintf(stderr, "refugectl: at most %d --ip\n", REPL_CERT_MAX_SAN);
                return CTL_USAGE;
            }
            opts.ips[opts.n_ips++] = v;
        } else if ((v = opt_value(argc, argv, &i, "--dns", &missing))) {
            if (opts.n_dns == REPL_CERT_MAX_SAN) {
                fprintf(stderr, "refugectl: at most %d --dns\n", REPL_CERT_MAX_SAN);
                return CTL_USAGE;
            }
            opts.dns[opts.n_dns++] = v;
        } else if (missing) {
            fprintf(stderr, "refugectl: %s needs a value\n", argv[i]);
            return CTL_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "refugectl: unknown option '%s'\n", argv[i]);
            return CTL_USAGE;
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            npos++;
        }
    }
    if (npos != 2) {
        fprintf(stderr,
                "usage: refugectl cert issue NAME DIR [--days N] [--ip ADDR]... [--dns HOST]...\n");
        return CTL_USAGE;
    }
    if (!repl_cert_name_valid(pos[0])) {
        fprintf(stderr, "refugectl: bad node name '%s' (1-64 of A-Z a-z 0-9 . _ -)\n", pos[0]);
        return CTL_USAGE;
    }
    if (repl_cert_issue(pos[1], pos[0], &opts, err, sizeof err) < 0) {
        fprintf(stderr, "refugectl: cert issue: %s\n", err);
        return CTL_FAIL;
    }
    printf("created %s/%s.key and %s/%s.crt\n", pos[1], pos[0], pos[1], pos[0]);
    return CTL_OK;
}

int ctl_cert_run(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "init") == 0)
        return cert_init(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "issue") == 0)
        return cert_issue(argc - 1, argv + 1);
    ctl_cert_usage(stderr);
    return CTL_USAGE;
}
