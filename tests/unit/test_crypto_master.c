/*
 * test_crypto_master — master key file: creation (mode, size, atomic), reload
 * of the same bytes, and the refusals (wrong size, loose permissions,
 * symlink, directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <cmocka.h>

#include "crypto/master.h"

static char dir[512];
static char path[600];

static int setup(void **state)
{
    const char *base = getenv("REFUGE_TEST_TMP");

    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(dir, sizeof dir, "%s/test_crypto_master.XXXXXX", base);
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/master.key", dir);
    return 0;
}

static int teardown(void **state)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1200];

    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) < 0)
                rmdir(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
    return 0;
}

static void write_file(const char *p, const void *data, size_t n, mode_t mode)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static int count_entries(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_create_and_reload(void **state)
{
    uint8_t a[32], b[32], zero[32] = { 0 }, disk[33];
    char err[256];
    bool created = false;
    struct stat st;
    int fd;

    assert_int_equal(crypto_master_load_or_create(path, a, &created, err, sizeof err), 0);
    assert_true(created);
    assert_memory_not_equal(a, zero, 32);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);
    /* The file holds exactly the returned bytes. */
    fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, disk, sizeof disk), 32);
    close(fd);
    assert_memory_equal(disk, a, 32);
    /* No temporary file is left behind. */
    assert_int_equal(count_entries(), 1);

    assert_int_equal(crypto_master_load_or_create(path, b, &created, err, sizeof err), 0);
    assert_false(created);
    assert_memory_equal(a, b, 32);
}

static void test_two_files_differ(void **state)
{
    uint8_t a[32], b[32];
    char other[700], err[256];

    snprintf(other, sizeof other, "%s/second.key", dir);
    assert_int_equal(crypto_master_load_or_create(path, a, NULL, err, sizeof err), 0);
    assert_int_equal(crypto_master_load_or_create(other, b, NULL, err, sizeof err), 0);
    assert_memory_not_equal(a, b, 32);
}

static void test_wrong_size_refused(void **state)
{
    uint8_t key[32], bytes[33];
    char err[256];

    memset(bytes, 7, sizeof bytes);
    write_file(path, bytes, 31, 0600);
    memset(key, 0xAA, sizeof key);
    assert_int_equal(crypto_master_load_or_create(path, key, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "31 bytes"));
    for (int i = 0; i < 32; i++)
        assert_int_equal(key[i], 0);                /* zeroed on failure */

    write_file(path, bytes, 33, 0600);
    assert_int_equal(crypto_master_load_or_create(path, key, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "33 bytes"));

    write_file(path, bytes, 0, 0600);
    assert_int_equal(crypto_master_load_or_create(path, key, NULL, err, sizeof err), -EINVAL);

    /* The refused file was not replaced. */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
}

static void test_loose_permissions_refused(void **state)
{
    static const mode_t modes[] = { 0640, 0604, 0660, 0644, 0700 | 0040, 0601 };
    uint8_t key[32], bytes[32];
    char err[256];

    memset(bytes, 9, sizeof bytes);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        write_file(path, bytes, 32, modes[i]);
        assert_int_equal(crypto_master_load_or_create(path, key, NULL, err, sizeof err), -EPERM);
        assert_non_null(strstr(err, "chmod 600"));
        assert_non_null(strstr(err, path));
    }
    /* 0400 (read-only owner) is fine. */
    write_file(path, bytes, 32, 0400);
    assert_int_equal(crypto_master_load_or_create(path, key, NULL, err, sizeof err), 0);
    assert_memory_equal(key, bytes, 32);
}

static void test_symlink_and_directory_refused(void **state)
{
    uint8_t key[32], bytes[32] = { 0 };
    char target[700], err[256];

    snprintf(target, sizeof target, "%s/target.key", dir);
    write_file(target, bytes, 32, 0600);
    assert_int_equal(symlink(target, path), 0);
    assert_true(crypto_master_load_or_create(path, key, NULL, err, sizeof err) < 0);
    assert_non_null(strstr(err, "symlink"));
    unlink(path);

    assert_int_equal(mkdir(path, 0700), 0);
    assert_true(crypto_master_load_or_create(path, key, NULL, err, sizeof err) < 0);
    assert_true(strlen(err) > 0);
}

static void test_missing_directory(void **state)
{
    uint8_t key[32];
    char p[700], err[256];

    snprintf(p, sizeof p, "%s/no/such/dir/master.key", dir);
    assert_int_equal(crypto_master_load_or_create(p, key, NULL, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "cannot create"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_files_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_size_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loose_permissions_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_and_directory_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
