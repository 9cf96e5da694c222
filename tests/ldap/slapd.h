/*
 * slapd.h — real OpenLDAP servers for the C unit tests of src/ldap
 * (tests/unit/test_ldap_*.c): the same configuration as tests/ldap/slapd.py
 * (mdb, syncprov, dynlist for memberOf, the same ACLs, unauthenticated
 * binds allowed as in many Active Directory set-ups) minus TLS, loaded
 * with tests/ldap/users.ldif by slapadd, served on a free loopback port by
 * a child process that the test kills at the end. Header-only: each test
 * executable includes it once.
 */
#ifndef REFUGE_TESTS_LDAP_SLAPD_H
#define REFUGE_TESTS_LDAP_SLAPD_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TSLAPD_SUFFIX "dc=example,dc=org"
#define TSLAPD_SERVICE_DN "cn=refuge,ou=system,dc=example,dc=org"
#define TSLAPD_SERVICE_PW "refuge-service-pw"

struct tslapd {
    char dir[512];
    char conf[600];
    char url[64];
    int port;
    pid_t pid;
};

static int tslapd_free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        abort();
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* tests/ldap/users.ldif, found next to this header. */
static const char *tslapd_ldif(void)
{
    static char path[1024];
    const char *f = __FILE__, *slash = strrchr(f, '/');

    snprintf(path, sizeof(path), "%.*s/users.ldif", slash ? (int)(slash - f) : 1, slash ? f : ".");
    return path;
}

static int tslapd_run(char *const argv[])
{
    int status = -1;
    pid_t p = fork();

    if (p == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    if (p < 0 || waitpid(p, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Creates the instance under base/name (config + data), not yet running. 0 or -1. */
static int tslapd_init(struct tslapd *s, const char *base, const char *name)
{
    char cmd[1200];
    FILE *f;

    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s/slapd-%s", base, name);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s/db'", s->dir, s->dir);
    if (system(cmd) != 0)
        return -1;
    s->port = tslapd_free_port();
    snprintf(s->url, sizeof(s->url), "ldap://127.0.0.1:%d", s->port);
    snprintf(s->conf, sizeof(s->conf), "%s/slapd.conf", s->dir);
    f = fopen(s->conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "include /etc/ldap/schema/core.schema\n"
            "include /etc/ldap/schema/cosine.schema\n"
            "include /etc/ldap/schema/inetorgperson.schema\n"
            "include /etc/ldap/schema/dyngroup.schema\n"
            "allow bind_anon_dn\n"
            "modulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload syncprov\nmoduleload dynlist\n"
            "pidfile %s/slapd.pid\nargsfile %s/slapd.args\n"
            "database mdb\nsuffix \"%s\"\nrootdn \"cn=admin,%s\"\nrootpw admin-secret\n"
            "directory %s/db\nmaxsize 33554432\n"
            "index objectClass eq\nindex entryCSN,entryUUID eq\nindex uid eq\n"
            "access to attrs=userPassword by self =xw by anonymous auth by * none\n"
            "access to dn.base=\"\" by * read\n"
            "access to * by users read by anonymous auth by * none\n"
            "overlay dynlist\ndynlist-attrset groupOfURLs memberURL member+memberOf@groupOfNames\n"
            "overlay syncprov\n",
            s->dir, s->dir, TSLAPD_SUFFIX, TSLAPD_SUFFIX, s->dir);
    fclose(f);
    {
        char *argv[] = { "/usr/sbin/slapadd", "-q", "-f", s->conf, "-l", (char *)tslapd_ldif(), NULL };
        if (tslapd_run(argv) != 0)
            return -1;
    }
    return 0;
}

static int tslapd_listening(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* Starts slapd in the foreground (-d 0) and waits for its port. 0 or -1. */
static int tslapd_start(struct tslapd *s)
{
    char listen[128], logp[600];

    snprintf(listen, sizeof(listen), "%s/", s->url);
    snprintf(logp, sizeof(logp), "%s/slapd.log", s->dir);
    s->pid = fork();
    if (s->pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/usr/sbin/slapd", "slapd", "-d", "0", "-f", s->conf, "-h", listen, (char *)NULL);
        _exit(127);
    }
    if (s->pid < 0)
        return -1;
    for (int i = 0; i < 200; i++) {
        struct timespec ts = { 0, 25 * 1000000L };
        if (tslapd_listening(s->port)) {
            nanosleep(&ts, NULL);       /* the listener is up before the database is */
            return 0;
        }
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* SIGSTOP, and wait until the kernel shows it stopped (signal delivery is
 * asynchronous: a request sent right after kill() could still be served). */
static void tslapd_pause(struct tslapd *s)
{
    char path[64], buf[256];

    kill(s->pid, SIGSTOP);
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)s->pid);
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        char *close;
        if (f)
            fclose(f);
        buf[n] = '\0';
        close = strrchr(buf, ')');
        if (close && close[1] == ' ' && close[2] == 'T')
            return;
        usleep(1000);
    }
}

static void tslapd_resume(struct tslapd *s)
{
    kill(s->pid, SIGCONT);
}

static void tslapd_stop(struct tslapd *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGCONT);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

/* A scratch directory for this test run. */
static const char *tslapd_tmpdir(const char *test)
{
    static char dir[512];
    const char *base = getenv("REFUGE_TEST_TMP");

    snprintf(dir, sizeof(dir), "%s/%s-%d", base && *base ? base : "/tmp", test, (int)getpid());
    mkdir(base && *base ? base : "/tmp", 0700);
    mkdir(dir, 0700);
    return dir;
}

#endif
