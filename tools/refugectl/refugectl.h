/*
 * refugectl — the operator's command-line tool. main.c owns argument
 * dispatch; each subcommand group lives in its own file and registers itself
 * in the table in main.c (cert.c, status.c, failover.c, switchover.c,
 * rejoin.c, drill.c).
 *
 * Exit codes: 0 success, 1 failure, 2 usage error, 3 refused (the command
 * saw a reason not to act, e.g. the failover target is behind and --force
 * was not given; nothing was changed, or what was changed is safe and said).
 */
#ifndef REFUGE_TOOLS_REFUGECTL_H
#define REFUGE_TOOLS_REFUGECTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CTL_OK 0
#define CTL_FAIL 1
#define CTL_USAGE 2
#define CTL_REFUSED 3

struct ctl_command {
    const char *name;                       /* first word: "cert" */
    const char *summary;                    /* one line for `refugectl help` */
    /* argv[0] is the command name itself. Returns CTL_OK / CTL_FAIL / CTL_USAGE / CTL_REFUSED. */
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *f);                 /* detailed usage lines */
};

/* cert.c */
int ctl_cert_run(int argc, char **argv);
void ctl_cert_usage(FILE *f);
/* status.c */
int ctl_status_run(int argc, char **argv);
void ctl_status_usage(FILE *f);
/* failover.c */
int ctl_failover_run(int argc, char **argv);
void ctl_failover_usage(FILE *f);
/* switchover.c */
int ctl_switchover_run(int argc, char **argv);
void ctl_switchover_usage(FILE *f);
/* rejoin.c */
int ctl_rejoin_run(int argc, char **argv);
void ctl_rejoin_usage(FILE *f);
/* drill.c */
int ctl_drill_run(int argc, char **argv);
void ctl_drill_usage(FILE *f);
/* seal.c */
int ctl_seal_run(int argc, char **argv);
void ctl_seal_usage(FILE *f);

/* ---- out.c: terminal output and the step journal ------------------------
 * Colour only when stdout is a terminal (and NO_COLOR is unset). Every step
 * of a state machine goes through ctl_step(): one line on stdout with the
 * time since the command started, and one JSON line in the cluster's
 * journal file when one is configured. */
enum ctl_colour { CTL_RESET, CTL_BOLD, CTL_DIM, CTL_RED, CTL_GREEN, CTL_YELLOW, CTL_CYAN };

void ctl_out_begin(const char *command, const char *journal_path);
void ctl_out_end(void);
const char *ctl_col(enum ctl_colour c);     /* "" when not colouring */
bool ctl_out_colour(void);
int64_t ctl_elapsed_ms(void);               /* since ctl_out_begin */
void ctl_step(const char *state, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ctl_set_quiet(bool quiet);             /* drill: sub-machines log to the journal only */

/* Shared option parsing: "--opt VALUE" or "--opt=VALUE"; NULL when argv[*i]
 * is not opt, *missing set when the value is absent. */
const char *ctl_opt_value(int argc, char **argv, int *i, const char *opt, int *missing);

#endif
