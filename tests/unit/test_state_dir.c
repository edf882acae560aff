/* state_dir: modes, umask, the instance lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/state_dir.h"

static char base[256];

static int
setup(void **state)
{
    snprintf(base, sizeof(base), "/tmp/tr_sd_XXXXXX");
    assert_non_null(mkdtemp(base));
    return 0;
}

static int
teardown(void **state)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    return system(cmd);
}

static mode_t
mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

static void
test_missing_dir_is_created_0700_with_parents(void **state)
{
    char path[300], parent[300], err[256], note[256];
    tr_state_dir *sd;

    snprintf(parent, sizeof(parent), "%s/a", base);
    snprintf(path, sizeof(path), "%s/a/b", base);
    sd = tr_state_dir_open(path, note, sizeof(note), err, sizeof(err));
    assert_non_null(sd);
    assert_string_equal(note, "");
    assert_int_equal(mode_of(path), 0700);
    assert_int_equal(mode_of(parent), 0700);
    assert_string_equal(tr_state_dir_path(sd), path);
    tr_state_dir_close(sd);
}

static void
test_wider_mode_is_narrowed_and_noted(void **state)
{
    char path[300], err[256], note[256];
    tr_state_dir *sd;

    snprintf(path, sizeof(path), "%s/wide", base);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(chmod(path, 0755), 0);
    sd = tr_state_dir_open(path, note, sizeof(note), err, sizeof(err));
    assert_non_null(sd);
    assert_int_equal(mode_of(path), 0700);
    assert_non_null(strstr(note, "755"));
    tr_state_dir_close(sd);
}

static void
test_a_file_is_refused_as_state_dir(void **state)
{
    char path[300], err[256];
    int fd;

    snprintf(path, sizeof(path), "%s/file", base);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_null(tr_state_dir_open(path, NULL, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "not a directory"));
}

static void
test_files_created_afterwards_are_0600(void **state)
{
    char path[300], file[320], lock[320], err[256];
    tr_state_dir *sd;
    int fd;

    snprintf(path, sizeof(path), "%s/sd", base);
    sd = tr_state_dir_open(path, NULL, 0, err, sizeof(err));
    assert_non_null(sd);
    snprintf(file, sizeof(file), "%s/some.db", path);
    fd = open(file, O_CREAT | O_WRONLY, 0666);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mode_of(file), 0600);
    snprintf(lock, sizeof(lock), "%s/lock", path);
    assert_int_equal(mode_of(lock), 0600);
    tr_state_dir_close(sd);
}

static void
test_lock_file_holds_our_pid(void **state)
{
    char path[300], lock[320], err[256], buf[32] = { 0 };
    tr_state_dir *sd;
    FILE *f;

    snprintf(path, sizeof(path), "%s/pid", base);
    sd = tr_state_dir_open(path, NULL, 0, err, sizeof(err));
    assert_non_null(sd);
    snprintf(lock, sizeof(lock), "%s/lock", path);
    f = fopen(lock, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_int_equal(strtol(buf, NULL, 10), (long)getpid());
    tr_state_dir_close(sd);
}

static void
test_second_instance_is_refused_naming_the_pid(void **state)
{
    char path[300], err[256], pid[32];
    tr_state_dir *first, *second;

    snprintf(path, sizeof(path), "%s/busy", base);
    first = tr_state_dir_open(path, NULL, 0, err, sizeof(err));
    assert_non_null(first);
    /* flock conflicts between two opens even in one process. */
    second = tr_state_dir_open(path, NULL, 0, err, sizeof(err));
    assert_null(second);
    snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
    assert_non_null(strstr(err, "in use by another treaty"));
    assert_non_null(strstr(err, pid));
    tr_state_dir_close(first);
    /* Released: a new instance may start. */
    second = tr_state_dir_open(path, NULL, 0, err, sizeof(err));
    assert_non_null(second);
    tr_state_dir_close(second);
}

static void
test_lock_dies_with_a_killed_process(void **state)
{
    char path[300], err[256];
    int fds[2], status;
    tr_state_dir *sd;
    pid_t child;
    char c;

    snprintf(path, sizeof(path), "%s/killed", base);
    assert_int_equal(pipe(fds), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        tr_state_dir *mine = tr_state_dir_open(path, NULL, 0, err,
                                               sizeof(err));

        c = mine ? 'y' : 'n';
        if (write(fds[1], &c, 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    assert_int_equal(read(fds[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    assert_null(tr_state_dir_open(path, NULL, 0, err, sizeof(err)));
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    sd = tr_state_dir_open(path, NULL, 0, err, sizeof(err));
    assert_non_null(sd);
    tr_state_dir_close(sd);
    close(fds[0]);
    close(fds[1]);
}

static void
test_dir_of_another_owner_is_refused(void **state)
{
    char path[300], err[256];

    if (geteuid() != 0) {
        skip(); /* needs root to give a directory away */
        return;
    }
    snprintf(path, sizeof(path), "%s/theirs", base);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(chown(path, 65534, 65534), 0);
    assert_null(tr_state_dir_open(path, NULL, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "owned by uid 65534"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_missing_dir_is_created_0700_with_parents, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_wider_mode_is_narrowed_and_noted, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_file_is_refused_as_state_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_files_created_afterwards_are_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_lock_file_holds_our_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_second_instance_is_refused_naming_the_pid, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_lock_dies_with_a_killed_process, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dir_of_another_owner_is_refused, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
