import CSeccomp
import Engine
import Foundation
import Processes

#if canImport(Glibc)
import Glibc
#endif

/// The system calls the test sandbox refuses, as a seccomp filter compiled by libseccomp for bubblewrap's
/// `--seccomp`: new namespaces (a nested `unshare -Ur` gave uid 0 and new network namespaces), io_uring, the kernel
/// keyring, BPF, ptrace and other processes' memory, perf events, userfaultfd, mounts, and setuid/setgid bits
/// (a setuid copy of python3 planted in the workspace could be run by another local user as the worker's uid).
/// Everything else is allowed; calls of other architectures (i386, x32) are refused whole by libseccomp's default.
public enum SyscallFilter {
    /// `clone`/`unshare` flags that make a namespace.
    static let namespaceFlags: [UInt64] = [0x0002_0000, 0x0200_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000, 0x0000_0080]

    /// Refused outright (EPERM), with why, as RESULTS.json and the README list them.
    public static let refused: [(group: String, calls: [String])] = [
        ("new namespaces", ["unshare", "setns"]),
        ("io_uring", ["io_uring_setup", "io_uring_enter", "io_uring_register"]),
        ("the kernel keyring", ["keyctl", "add_key", "request_key"]),
        ("BPF", ["bpf"]),
        ("ptrace and other processes' memory", ["ptrace", "process_vm_readv", "process_vm_writev"]),
        ("perf events", ["perf_event_open"]),
        ("userfaultfd", ["userfaultfd"]),
        ("mounts", ["mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"]),
    ]

    /// One line for the protections list.
    public static var summary: String {
        "seccomp filter (libseccomp): no " + refused.map(\.group).joined(separator: ", ") + ", no setuid/setgid bits, no clone with namespace flags"
    }

    /// The filter as BPF bytes, or an error saying why it cannot be built here.
    public static func compile() throws -> Data {
        guard let context = seccomp_init(cseccomp_allow()) else {
            throw EngineError(code: .io, message: "libseccomp could not start a filter (seccomp_init); install libseccomp2")
        }
        defer { seccomp_release(context) }
        let eperm = cseccomp_errno_action(EPERM)
        func rule(_ name: String, _ action: UInt32, arg: UInt32? = nil, mask: UInt64 = 0, value: UInt64 = 0, required: Bool = true) throws {
            let number = seccomp_syscall_resolve_name(name)
            guard number != __NR_SCMP_ERROR else {
                if required { throw EngineError(code: .io, message: "libseccomp does not know the system call \(name); install a newer libseccomp2") }
                return
            }
            let rc = cseccomp_rule(context, action, number, arg == nil ? 0 : 1, arg ?? 0, mask, value)
            guard rc == 0 else { throw EngineError(code: .io, message: "libseccomp refused the rule for \(name): \(String(cString: strerror(-rc)))") }
        }
        for group in refused {
            for call in group.calls {
                // The new mount API and mount_setattr are newer than some libseccomp releases: refused where known.
                try rule(call, eperm, required: !["open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"].contains(call))
            }
        }
        // clone: refused with any namespace flag; clone3's flags are in memory a filter cannot read, so it answers
        // ENOSYS and the C library falls back to clone (as Flatpak and Docker do).
        for flag in namespaceFlags { try rule("clone", eperm, arg: 0, mask: flag, value: flag) }
        try rule("clone3", cseccomp_errno_action(ENOSYS), required: false)
        // Modes with setuid or setgid bits; fchmodat2 (newer than the filter's knowledge of flags) answers ENOSYS.
        try rule("chmod", eperm, arg: 1, mask: UInt64(S_ISUID), value: UInt64(S_ISUID))
        try rule("chmod", eperm, arg: 1, mask: UInt64(S_ISGID), value: UInt64(S_ISGID))
        try rule("fchmod", eperm, arg: 1, mask: UInt64(S_ISUID), value: UInt64(S_ISUID))
        try rule("fchmod", eperm, arg: 1, mask: UInt64(S_ISGID), value: UInt64(S_ISGID))
        try rule("fchmodat", eperm, arg: 2, mask: UInt64(S_ISUID), value: UInt64(S_ISUID))
        try rule("fchmodat", eperm, arg: 2, mask: UInt64(S_ISGID), value: UInt64(S_ISGID))
        try rule("fchmodat2", cseccomp_errno_action(ENOSYS), required: false)
        let file = try Subprocess.privateOutputFile()
        defer { close(file) }
        let rc = seccomp_export_bpf(context, file)
        guard rc == 0 else { throw EngineError(code: .io, message: "libseccomp could not export the filter: \(String(cString: strerror(-rc)))") }
        var info = stat()
        fstat(file, &info)
        return Subprocess.readAll(file, size: Int(info.st_size))
    }
}
