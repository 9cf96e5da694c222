/*
 * refugectl — the operator's command-line tool. main.c owns argument
 * dispatch; each subcommand group lives in its own file and registers itself
 * in the table in main.c (cert.c today; status, failover... later).
 *
 * Exit codes: 0 success, 1 failure, 2 usage error.
 */
#ifndef REFUGE_TOOLS_REFUGECTL_H
#define REFUGE_TOOLS_REFUGECTL_H

#include <stdio.h>

#define CTL_OK 0
#define CTL_FAIL 1
#define CTL_USAGE 2

struct ctl_command {
    const char *name;                       /* first word: "cert" */
    const char *summary;                    /* one line for `refugectl help` */
    /* argv[0] is the command name itself. Returns CTL_OK / CTL_FAIL / CTL_USAGE. */
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *f);                 /* detailed usage lines */
};

/* cert.c */
int ctl_cert_run(int argc, char **argv);
void ctl_cert_usage(FILE *f);

#endif
