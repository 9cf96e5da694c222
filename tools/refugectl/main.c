/*
 * refugectl — entry point and subcommand dispatch.
 *
 * Adding a subcommand: write its run/usage functions in a new file, declare
 * them in refugectl.h and add one row to `commands` below. Nothing else
 * changes; `refugectl help` lists the table.
 */
#include <stdio.h>
#include <string.h>

#include "refugectl.h"

static const struct ctl_command commands[] = {
    { "cert", "manage the replication CA and node certificates", ctl_cert_run, ctl_cert_usage },
    { "status", "the deployment at a glance: roles, positions, lag, RPO, front door", ctl_status_run,
      ctl_status_usage },
    { "failover", "unplanned: fence the old active, promote NODE, switch the front door", ctl_failover_run,
      ctl_failover_usage },
    { "switchover", "planned, zero loss: hand the active role to NODE", ctl_switchover_run, ctl_switchover_usage },
    { "rejoin", "bring a recovered old primary back as a standby", ctl_rejoin_run, ctl_rejoin_usage },
    { "drill", "a measured DR test: load, kill, failover, rejoin, switchover back", ctl_drill_run,
      ctl_drill_usage },
    { "seal-secret", "seal a secret (stdin) with the master key for an artifact", ctl_seal_run, ctl_seal_usage },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: refugectl COMMAND [ARGS...]\n"
               "       refugectl --version\n"
               "       refugectl help [COMMAND]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        commands[i].usage(f);
    fprintf(f, "\nexit status: 0 success, 1 failure, 2 usage error, 3 refused (nothing unsafe was done)\n");
}

static const struct ctl_command *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const struct ctl_command *cmd;

    if (argc < 2) {
        usage(stderr);
        return CTL_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("refugectl %s\n", REFUGE_VERSION);
        return CTL_OK;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        if (argc > 2 && (cmd = find(argv[2]))) {
            cmd->usage(stdout);
            return CTL_OK;
        }
        if (argc > 2) {
            fprintf(stderr, "refugectl: unknown command '%s'\n", argv[2]);
            usage(stderr);
            return CTL_USAGE;
        }
        usage(stdout);
        return CTL_OK;
    }
    if (!(cmd = find(argv[1]))) {
        fprintf(stderr, "refugectl: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return CTL_USAGE;
    }
    return cmd->run(argc - 1, argv + 1);
}
