/*
 * out — how refugectl talks to the operator: colour only on a terminal, and
 * one line per state-machine step, mirrored as JSON lines into the cluster's
 * journal so an interrupted failover can be read back afterwards (what was
 * done, in which order, how long each step took).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/timeutil.h"
#include "refugectl.h"

static struct {
    bool colour;
    bool quiet;
    int64_t t0;
    FILE *journal;
    char command[32];
} out = { .t0 = 0 };

void ctl_out_begin(const char *command, const char *journal_path)
{
    const char *nc = getenv("NO_COLOR");

    out.colour = isatty(STDOUT_FILENO) && !(nc && *nc);
    out.t0 = time_mono_us();
    snprintf(out.command, sizeof out.command, "%s", command);
    if (journal_path && !out.journal) {
        out.journal = fopen(journal_path, "a");
        if (!out.journal)
            fprintf(stderr, "refugectl: journal %s: cannot open, steps are not journaled\n", journal_path);
    }
}

void ctl_out_end(void)
{
    if (out.journal)
        fclose(out.journal);
    out.journal = NULL;
}

bool ctl_out_colour(void)
{
    return out.colour;
}

const char *ctl_col(enum ctl_colour c)
{
    static const char *const codes[] = { "\033[0m", "\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[33m",
                                         "\033[36m" };
    return out.colour ? codes[c] : "";
}

int64_t ctl_elapsed_ms(void)
{
    return (time_mono_us() - out.t0) / 1000;
}

void ctl_set_quiet(bool quiet)
{
    out.quiet = quiet;
}

static void journal(const char *level, const char *state, const char *msg)
{
    char ts[40];
    struct buf b;

    if (!out.journal)
        return;
    buf_init(&b, 8192);
    time_rfc3339(time_wall_us(), ts, sizeof ts, 1);
    buf_printf(&b, "{\"time\":\"%s\",\"command\":\"%s\",\"level\":\"%s\",\"state\":\"", ts, out.command, level);
    buf_json_escape(&b, state, strlen(state));
    buf_printf(&b, "\",\"elapsed_ms\":%lld,\"msg\":\"", (long long)ctl_elapsed_ms());
    buf_json_escape(&b, msg, strlen(msg));
    buf_puts(&b, "\"}\n");
    fwrite(b.data, 1, b.len, out.journal);
    fflush(out.journal);
    buf_free(&b);
}

void ctl_step(const char *state, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    journal("info", state, msg);
    if (out.quiet)
        return;
    printf("%s%7lldms%s  %s%-14s%s %s\n", ctl_col(CTL_DIM), (long long)ctl_elapsed_ms(), ctl_col(CTL_RESET),
           ctl_col(CTL_CYAN), state, ctl_col(CTL_RESET), msg);
    fflush(stdout);
}

void ctl_warn(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    journal("warn", "", msg);
    if (out.quiet)
        return;
    printf("%s%7lldms%s  %swarning%s        %s\n", ctl_col(CTL_DIM), (long long)ctl_elapsed_ms(), ctl_col(CTL_RESET),
           ctl_col(CTL_YELLOW), ctl_col(CTL_RESET), msg);
    fflush(stdout);
}

const char *ctl_opt_value(int argc, char **argv, int *i, const char *opt, int *missing)
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
