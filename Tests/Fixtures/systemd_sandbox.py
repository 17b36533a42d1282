#!/usr/bin/python3
"""Runs a command under the restrictions a systemd unit file would put on it, for machines where systemd is
not PID 1 (containers, CI): its SystemCallFilter= (expanded with `systemd-analyze syscall-filter`, default
action: kill the process with SIGSYS, as systemd does), RestrictNamespaces= (unshare/clone/setns with another
namespace flag fail with EPERM, clone3 with ENOSYS, as systemd does), NoNewPrivileges=, the mount-namespace
rules that touch /proc (ProtectKernelTunables: /proc/sys, /proc/sysrq-trigger and /sys read-only;
ProtectKernelLogs: /proc/kmsg covered by an inaccessible file; ProtectProc=invisible: a proc mount with
hidepid=invisible; ProcSubset=pid: subset=pid; ProtectControlGroups: /sys/fs/cgroup read-only), PrivateTmp=
(a fresh /tmp), PrivateUsers= (a user namespace mapping only root and the service's uid) and DynamicUser= (an
unprivileged uid with no capabilities).
Not reproduced: the rest of ProtectSystem=strict, PrivateDevices=, the cgroup and IP settings.

Usage (as root): systemd_sandbox.py UNIT_FILE UID [--keep PATH ...] -- COMMAND...
--keep PATH: a folder under /tmp that stays visible through PrivateTmp (the worker's binary and project when a
checkout lives under /tmp; a real installation keeps them outside /tmp).
Needs Debian's python3-seccomp (libseccomp's bindings) and systemd-analyze.
"""
import ctypes, errno, os, subprocess, sys

import seccomp

LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_FLAGS = {"cgroup": 0x02000000, "ipc": 0x08000000, "mnt": 0x00020000, "net": 0x40000000,
               "pid": 0x20000000, "user": 0x10000000, "uts": 0x04000000}


def unit_settings(path):
    settings = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def expand(name, seen=None):
    """A syscall group (@name) as the syscalls in it, nested groups included; a plain name as itself."""
    if not name.startswith("@"):
        return {name}
    seen = seen or set()
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True).stdout
    calls = set()
    for item in out.split("\n")[1:]:
        item = item.strip()
        if item and not item.startswith("#"):
            calls |= expand(item, seen)
    return calls


def allowed_syscalls(settings):
    allowed = set()
    for value in settings.get("SystemCallFilter", []):
        deny = value.startswith("~")
        names = set()
        for word in value.lstrip("~").split():
            names |= expand(word)
        allowed = allowed - names if deny else allowed | names
    return allowed


def apply_mounts(settings, keep=()):
    def ro_bind(path):
        subprocess.run(["mount", "--bind", path, path], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", path], check=True)

    if LIBC.unshare(0x00020000) != 0:  # CLONE_NEWNS (os.unshare is Python 3.12+)
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    if settings.get("PrivateTmp") == ["yes"]:
        kept = []
        for n, path in enumerate(p for p in keep if p.startswith("/tmp/")):
            aside = "/run/autonomy-keep-%d-%d" % (os.getpid(), n)
            os.makedirs(aside, exist_ok=True)
            subprocess.run(["mount", "--rbind", path, aside], check=True)
            kept.append((aside, path))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp"], check=True)
        for aside, path in kept:
            os.makedirs(path, exist_ok=True)
            subprocess.run(["mount", "--rbind", aside, path], check=True)
    options = []
    if settings.get("ProtectProc"):
        options.append("hidepid=" + settings["ProtectProc"][-1])
    if settings.get("ProcSubset") == ["pid"]:
        options.append("subset=pid")
    if options:
        subprocess.run(["mount", "-t", "proc", "-o", ",".join(options), "proc", "/proc"], check=True)
    if settings.get("ProtectKernelTunables") == ["yes"]:
        for path in ("/proc/sys", "/proc/sysrq-trigger", "/sys"):
            if os.path.exists(path):
                ro_bind(path)
    if settings.get("ProtectKernelLogs") == ["yes"] and os.path.exists("/proc/kmsg"):
        # systemd makes /proc/kmsg inaccessible by mounting an empty mode-000 file over it.
        inaccessible = "/run/autonomy-inaccessible"
        with open(inaccessible, "w"):
            pass
        os.chmod(inaccessible, 0)
        subprocess.run(["mount", "--bind", inaccessible, "/proc/kmsg"], check=True)
    if settings.get("ProtectControlGroups") == ["yes"] and os.path.isdir("/sys/fs/cgroup"):
        ro_bind("/sys/fs/cgroup")


def load_filter(settings):
    # systemd kills with SIGSYS, or fails the call with SystemCallErrorNumber= when that is set.
    number = settings.get("SystemCallErrorNumber", [None])[-1]
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(getattr(errno, number)) if number else seccomp.KILL_PROCESS)
    allowed = allowed_syscalls(settings)
    restricted = settings.get("RestrictNamespaces", [None])[-1]
    denied_mask = 0
    if restricted is not None and restricted not in ("no", ""):
        permitted = set() if restricted == "yes" else set(restricted.split())
        denied_mask = sum(flag for name, flag in CLONE_FLAGS.items() if name not in permitted)
    for name in sorted(allowed):
        try:
            if name in ("unshare", "clone") and denied_mask:
                f.add_rule(seccomp.ALLOW, name, seccomp.Arg(0, seccomp.MASKED_EQ, denied_mask, 0))
                for flag in CLONE_FLAGS.values():
                    if flag & denied_mask:
                        f.add_rule(seccomp.ERRNO(errno.EPERM), name, seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
            elif name == "setns" and denied_mask:
                f.add_rule(seccomp.ALLOW, name, seccomp.Arg(1, seccomp.MASKED_EQ, denied_mask, 0))
                f.add_rule(seccomp.ERRNO(errno.EPERM), name, seccomp.Arg(1, seccomp.MASKED_EQ, denied_mask, denied_mask))
            elif name == "clone3" and restricted not in (None, "no", ""):
                f.add_rule(seccomp.ERRNO(errno.ENOSYS), name)
            else:
                f.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError, OSError):
            pass  # a name this architecture does not have
    f.load()


def private_users(uid):
    """PrivateUsers=yes: a new user namespace in which only root and the service's uid are mapped."""
    ready_r, ready_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(ready_r)
        os.close(mapped_w)
        if LIBC.unshare(0x10000000) != 0:  # CLONE_NEWUSER
            os._exit(70)
        os.write(ready_w, b"x")
        if os.read(mapped_r, 1) != b"x":
            os._exit(71)
        return  # the child goes on to run the command
    os.close(ready_w)
    os.close(mapped_r)
    if os.read(ready_r, 1) != b"x":
        sys.exit("private_users: the child could not create a user namespace")
    for name in ("uid_map", "gid_map"):
        with open("/proc/%d/%s" % (child, name), "w") as f:
            f.write("0 0 1\n%d %d 1\n" % (uid, uid))
    os.write(mapped_w, b"x")
    _, status = os.waitpid(child, 0)
    sys.exit(os.waitstatus_to_exitcode(status) if status else 0)


def main():
    unit, uid, rest = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    command = rest[rest.index("--") + 1:]
    options = rest[:rest.index("--")]
    keep = [options[i + 1] for i, o in enumerate(options) if o == "--keep" and i + 1 < len(options)]
    settings = unit_settings(unit)
    apply_mounts(settings, keep)
    if settings.get("PrivateUsers") == ["yes"]:
        private_users(uid)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)  # no keepcaps: every capability is gone, as with DynamicUser=yes and CapabilityBoundingSet=
    if settings.get("NoNewPrivileges") == ["yes"]:
        LIBC.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    load_filter(settings)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
