/*
 * testutil — what many unit tests need and none should write again: a fresh
 * temporary directory (under $REFUGE_TEST_TMP, which ctest points into the
 * build tree, else /tmp) and its recursive removal.
 */
#ifndef REFUGE_TESTS_TESTUTIL_H
#define REFUGE_TESTS_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creates BASE/TAG-XXXXXX into dir; aborts the test program on failure. */
static inline void test_tmpdir(char *dir, size_t len, const char *tag)
{
    const char *base = getenv("REFUGE_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    if (mkdir(base, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "mkdir %s: %s\n", base, strerror(errno));
        abort();
    }
    snprintf(dir, len, "%s/%s-XXXXXX", base, tag);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
        abort();
    }
}

/* Removes path and everything below it (no symlinks followed). */
static inline void test_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char p[4096];
        while (d && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
            test_rmtree(p);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

#endif
