import CSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What the `autonomy` process does to itself before anything else: files and folders it creates are
/// owner-only (umask 077: state folders 0700, files 0600, whoever runs it and however), and it is not
/// dumpable (no core files, no ptrace attach, and `/proc/<pid>/environ`, where the API keys are, readable
/// by root only, not by other processes of the same user).
public enum ProcessHardening {
    public static func apply() {
        umask(0o077)
        _ = csystem_set_not_dumpable()
    }

    /// True when the process is not dumpable.
    public static var isNotDumpable: Bool { csystem_dumpable() == 0 }
}
