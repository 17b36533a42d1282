#ifndef AUTONOMY_CSYSTEM_SHIM_H
#define AUTONOMY_CSYSTEM_SHIM_H
// Linux calls Swift's Glibc module does not import: prctl is variadic, and glibc declares
// posix_spawn_file_actions_addclosefrom_np (glibc >= 2.34) only for _GNU_SOURCE.
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/fsuid.h>

extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

/// Every descriptor from `from` up is closed in the child before it runs.
static inline int csystem_spawn_closefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

/// The child changes to `path` before it runs (glibc >= 2.29).
static inline int csystem_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

/// PR_SET_DUMPABLE 0: no core dumps, no ptrace attach, /proc/<pid>/environ and mem readable by root only.
static inline int csystem_set_not_dumpable(void) { return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }

/// PR_GET_DUMPABLE.
static inline int csystem_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }
/// PR_SET_NAME: the calling thread's name as /proc and debuggers show it (15 bytes at most).
static inline int csystem_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }
/// setfsuid(2): this thread's file-system uid (tests simulate an unprivileged worker with it).
static inline int csystem_setfsuid(unsigned int uid) { return setfsuid(uid); }
#endif
