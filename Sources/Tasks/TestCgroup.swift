import Engine
import JSON
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A control group for one test run, below the worker's own: the memory limit counts every page the test makes,
/// tmpfs and `/dev/shm` included (their pages belong to no process, so per-process limits miss them and the OOM
/// killer would pick another service), swap is not allowed, and the number of processes is capped. cgroup v2 (the
/// unified hierarchy, delegated to the worker: the shipped unit's `Delegate=yes`) or v1's memory and pids
/// controllers. The test command joins it before bubblewrap starts, so nothing of the test runs outside it.
public struct TestCgroup: Sendable {
    public enum Version: String, Sendable { case v1, v2 }

    public let version: Version
    /// The folders made for this run (one per v1 hierarchy, one for v2).
    public let folders: [String]
    public let memoryBytes: Int
    public let processes: Int

    /// The `cgroup.procs` files the test's first process writes its pid into.
    public var procsFiles: [String] { folders.map { $0 + "/cgroup.procs" } }

    /// A new cgroup with the limits, or why none can be made here (the caller reports it in RESULTS.json).
    public static func create(memoryBytes: Int, processes: Int) -> Result<TestCgroup, EngineError> {
        let name = "autonomy-test-\(UUID().uuidString.prefix(8).lowercased())"
        let mounts = Mounts.read()
        let own = ownCgroups()
        if let unified = mounts.unified, let path = own["0"], FileManager.default.fileExists(atPath: unified + path + "/cgroup.controllers") {
            let parent = unified + (path == "/" ? "" : path)
            if let made = try? makeV2(parent: parent, name: name, memoryBytes: memoryBytes, processes: processes) { return .success(made) }
        }
        if let memoryMount = mounts.v1["memory"], let pidsMount = mounts.v1["pids"], let memoryPath = own["memory"], let pidsPath = own["pids"] {
            let memory = memoryMount + (memoryPath == "/" ? "" : memoryPath) + "/" + name
            let pids = pidsMount + (pidsPath == "/" ? "" : pidsPath) + "/" + name
            do {
                try make(memory)
                try make(pids)
                let cgroup = TestCgroup(version: .v1, folders: [memory, pids], memoryBytes: memoryBytes, processes: processes)
                try write("\(memoryBytes)", to: memory + "/memory.limit_in_bytes")
                // Memory and swap together: no swap beyond the limit (absent when the kernel does not account swap).
                if FileManager.default.fileExists(atPath: memory + "/memory.memsw.limit_in_bytes") {
                    try write("\(memoryBytes)", to: memory + "/memory.memsw.limit_in_bytes")
                }
                try write("\(processes)", to: pids + "/pids.max")
                return .success(cgroup)
            } catch {
                rmdir(memory)
                rmdir(pids)
                return .failure(EngineError(code: .io, message: "cgroup v1 (\(memoryMount), \(pidsMount)) cannot be used: \(error)"))
            }
        }
        return .failure(EngineError(
            code: .io,
            message: "no cgroup with memory and pids controllers can be made below the worker's (\(own["0"] ?? own["memory"] ?? "unknown")): "
                + "run the worker under the shipped systemd unit (Delegate=yes) or as root"))
    }

    /// cgroup v2: the controllers are enabled for the worker's children; where the worker's own cgroup holds
    /// processes (the no-internal-processes rule), the worker first moves itself into a `worker` leaf.
    static func makeV2(parent: String, name: String, memoryBytes: Int, processes: Int) throws -> TestCgroup {
        let control = parent + "/cgroup.subtree_control"
        let enabled = (try? String(contentsOfFile: control, encoding: .utf8)) ?? ""
        if !(enabled.contains("memory") && enabled.contains("pids")) {
            do {
                try write("+memory +pids", to: control)
            } catch {
                let leaf = parent + "/worker"
                try make(leaf, existing: true)
                for pid in ((try? String(contentsOfFile: parent + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n") {
                    try? write(String(pid), to: leaf + "/cgroup.procs")
                }
                try write("+memory +pids", to: control)
            }
        }
        let folder = parent + "/" + name
        try make(folder)
        do {
            try write("\(memoryBytes)", to: folder + "/memory.max")
            if FileManager.default.fileExists(atPath: folder + "/memory.swap.max") { try write("0", to: folder + "/memory.swap.max") }
            try write("\(processes)", to: folder + "/pids.max")
        } catch {
            rmdir(folder)
            throw error
        }
        return TestCgroup(version: .v2, folders: [folder], memoryBytes: memoryBytes, processes: processes)
    }

    /// The most memory the test used at once (tmpfs included), in bytes.
    public var peakMemory: Int? {
        let file = version == .v2 ? folders[0] + "/memory.peak" : folders[0] + "/memory.max_usage_in_bytes"
        return (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// How many times the kernel killed a process of the test for memory.
    public var oomKills: Int {
        let file = version == .v2 ? folders[0] + "/memory.events" : folders[0] + "/memory.oom_control"
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") { return Int(line.dropFirst("oom_kill ".count)) ?? 0 }
        return 0
    }

    /// Kills whatever is left in the cgroup and removes it; throws when it cannot be removed.
    public func destroy() throws {
        for _ in 0..<100 {
            var left = 0
            for folder in folders {
                if version == .v2, FileManager.default.fileExists(atPath: folder + "/cgroup.kill") { try? Self.write("1", to: folder + "/cgroup.kill") }
                for pid in ((try? String(contentsOfFile: folder + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n").compactMap({ pid_t($0) }) {
                    kill(pid, SIGKILL)
                    left += 1
                }
            }
            if left == 0 { break }
            usleep(20_000)
        }
        for folder in folders where rmdir(folder) != 0 && errno != ENOENT {
            throw EngineError(code: .io, message: "cannot remove the test's cgroup \(folder): \(String(cString: strerror(errno))); remove it by hand (rmdir)")
        }
    }

    /// As RESULTS.json reports it.
    public var json: JSONValue {
        ["version": .string(version.rawValue), "memory_bytes": .int(memoryBytes), "swap_bytes": 0, "processes": .int(processes), "peak_memory_bytes": peakMemory.map { .int($0) } ?? .null, "oom_kills": .int(oomKills)]
    }

    // MARK: - Where the cgroups are

    struct Mounts {
        var unified: String?
        /// v1 controller → mount point.
        var v1: [String: String] = [:]

        static func read() -> Mounts {
            var mounts = Mounts()
            let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                // id parent major:minor root mount-point options [optional…] - fstype source super-options
                let halves = line.components(separatedBy: " - ")
                guard halves.count == 2 else { continue }
                let before = halves[0].split(separator: " ")
                let after = halves[1].split(separator: " ")
                guard before.count >= 5, after.count >= 3 else { continue }
                let point = String(before[4])
                if after[0] == "cgroup2", mounts.unified == nil || point == "/sys/fs/cgroup" {
                    mounts.unified = point
                } else if after[0] == "cgroup" {
                    for option in after[2].split(separator: ",") where ["memory", "pids"].contains(option) { mounts.v1[String(option)] = point }
                }
            }
            return mounts
        }
    }

    /// This process's cgroup per hierarchy: "0" for v2, else each v1 controller.
    static func ownCgroups() -> [String: String] {
        var result: [String: String] = [:]
        for line in ((try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? "").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty { result["0"] = String(parts[2]) }
            for controller in parts[1].split(separator: ",") { result[String(controller)] = String(parts[2]) }
        }
        return result
    }

    static func make(_ folder: String, existing: Bool = false) throws {
        guard mkdir(folder, 0o755) == 0 || (existing && errno == EEXIST) else {
            throw EngineError(code: .io, message: "cannot make the cgroup \(folder): \(String(cString: strerror(errno)))")
        }
    }

    static func write(_ text: String, to file: String) throws {
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw EngineError(code: .io, message: "cannot open \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        guard written >= 0 else { throw EngineError(code: .io, message: "cannot write '\(text)' to \(file): \(String(cString: strerror(errno)))") }
    }
}
