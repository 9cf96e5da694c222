/*
 * refuged — the Refuge node: one process serving OAuth/OIDC, SCIM, admin,
 * health and metrics over HTTP, owning one store, in the role (active or
 * standby) persisted in that store.
 *
 * Start-up: parse the command line, load and validate refuge.conf (errors
 * name file:line:key, exit code 2), open the log, block the signals we
 * handle, load the master key, open the store (migrations), load the node
 * state, bootstrap an empty active node, start HTTP. The main thread then
 * waits for signals:
 *   SIGHUP           reopen the log file
 *   SIGTERM, SIGINT  stop accepting, let in-flight requests finish (up to
 *                    10 s), close the store cleanly, exit 0
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xmalloc.h"
#include "node/app.h"
#include "node/conf.h"
#include "node/node.h"

#define EXIT_CONFIG 2

static void usage(FILE *f)
{
    fprintf(f,
            "usage: refuged -c FILE          run a node\n"
            "       refuged --check-config FILE   validate FILE and exit (0 valid, 2 invalid)\n"
            "       refuged --version\n"
            "       refuged --help\n");
}

static int load_conf(const char *path, struct refuge_conf *c)
{
    struct cfg_error err;
    if (conf_load(path, c, &err) != 0) {
        char msg[1024];
        fprintf(stderr, "refuged: %s\n", cfg_error_format(&err, msg, sizeof(msg)));
        conf_free(c);
        return -1;
    }
    return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            rc = -errno;
            goto out;
        }
        *s = '/';
    }
    if (mkdir(p, mode) != 0 && errno != EEXIST)
        rc = -errno;
out:
    free(p);
    return rc;
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL;
    int check_only = 0;
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", required_argument, NULL, 'C' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { 0, 0, 0, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': conf_path = optarg; break;
        case 'C': conf_path = optarg; check_only = 1; break;
        case 'V': printf("refuged %s\n", REFUGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_CONFIG;
        }
    }
    if (!conf_path || optind != argc) {
        usage(stderr);
        return EXIT_CONFIG;
    }

    struct refuge_conf conf;
    if (load_conf(conf_path, &conf) != 0)
        return EXIT_CONFIG;
    if (check_only) {
        printf("%s: OK\n", conf_path);
        conf_free(&conf);
        return 0;
    }

    int64_t t0 = time_mono_us();
    if (log_init(conf.log_level, conf.log_format == CONF_LOG_JSON, conf.log_file) != 0) {
        fprintf(stderr, "refuged: %s: log.file: cannot open %s: %s\n", conf_path, conf.log_file,
                strerror(errno));
        conf_free(&conf);
        return EXIT_CONFIG;
    }

    /* Block the signals we handle before any thread starts, so every thread
     * inherits the mask and only sigwait() below sees them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = mkdir_p(conf.data_dir, 0700);
    if (rc != 0) {
        log_error("cannot create data dir", "path", conf.data_dir, "error", strerror(-rc), NULL);
        conf_free(&conf);
        return 1;
    }

    struct app app;
    char err[512];
    if (app_start(&app, &conf, err, sizeof(err)) != 0) {
        log_error("start failed", "error", err, NULL);
        fprintf(stderr, "refuged: %s\n", err);
        conf_free(&conf);
        return 1;
    }
    log_info("refuged ready", "version", REFUGE_VERSION, "node", conf.node_name, "region", conf.node_region,
             "role", node_role_name(atomic_load(&app.node.role)), "http", conf.http_listen, "port",
             log_i64(http_server_port(app.node.http)), "startup_us", log_i64(time_mono_us() - t0), NULL);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            log_reopen();
            log_info("log reopened", NULL);
            continue;
        }
        log_info("shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
        break;
    }
    app_stop(&app);
    log_info("stopped", NULL);
    log_close();
    conf_free(&conf);
    return 0;
}
