import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One run's folder, `<state_dir>/runs/<flow-run-id>/`, with the seed's fixed subfolders. Every write
/// goes through here: paths are checked to stay inside (no absolute paths, `..`, NUL bytes or symlinks),
/// and files are written atomically (temp file, fsync, rename), so a crash never leaves half a file.
public struct RunFolder: Sendable {
    public static let subfolders = ["inputs", "designs", "implementations", "tests", "decisions"]

    public let root: String
    public let runID: String
    /// The state folder the run folder lies in (where the trace index is kept).
    public let stateDir: String

    public init(stateDir: String, runID: String) {
        self.runID = runID
        self.stateDir = stateDir
        self.root = (stateDir as NSString).appendingPathComponent("runs/\(runID)")
    }

    public var exists: Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: root, isDirectory: &isDir) && isDir.boolValue
    }

    public var tracePath: String { root + "/TRACE.json" }

    /// Creates the folder and its subfolders (idempotent).
    public func create() throws {
        for sub in Self.subfolders { try Self.makeDirectories(root + "/" + sub, what: "cannot create the run folder") }
    }

    /// `mkdir -p` with POSIX calls, so a failure reports the real cause (read-only, no space, permission).
    static func makeDirectories(_ path: String, what: String) throws {
        var current = ""
        for component in Self.components(path, omittingEmpty: true) {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw ioError(what, path: current)
            }
        }
    }

    /// The absolute path of `relative`, which must stay inside the run folder (and inside `within`, a subfolder, when given).
    public func path(_ relative: String, within subfolder: String? = nil) throws -> String {
        try Self.checkRelative(relative)
        if let subfolder {
            let first = Self.components(relative, omittingEmpty: true).first
            guard first == subfolder else {
                throw EngineError(code: .unsafePath, message: "'\(relative)' is outside \(subfolder)/: this stage may only write there", key: relative)
            }
        }
        let full = root + "/" + relative
        // No component between the root and the file may be a symlink (it could point anywhere).
        var current = root
        for component in Self.components(relative, omittingEmpty: true) {
            current += "/" + component
            var info = stat()
            if lstat(current, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
                throw EngineError(code: .unsafePath, message: "'\(relative)' goes through a symbolic link; generated files may not use links", key: relative)
            }
        }
        return full
    }

    /// The components of a path as the file system splits it: at the byte '/'. Not `split(separator: "/")`,
    /// which splits at Characters: a combining mark after a '/' makes one Character of both, so
    /// `../\u{65B}x` would be one harmless-looking component (found by scripts/fuzz).
    public static func components(_ path: String, omittingEmpty: Bool) -> [String] {
        path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: omittingEmpty).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The folder a path is in, split at the last '/' byte (NSString's path methods split at Characters too).
    static func parent(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        return slash == path.utf8.startIndex ? "/" : String(decoding: path.utf8[..<slash], as: UTF8.self)
    }

    /// Relative, non-empty, no `..`/`.`, no NUL, no absolute path, no backslash tricks; checked on the
    /// bytes the file system will see.
    public static func checkRelative(_ relative: String) throws {
        func reject(_ why: String) -> EngineError {
            let shown = relative.unicodeScalars.map { $0 == "\0" ? "\\0" : String($0) }.joined()
            return EngineError(code: .unsafePath, message: "unsafe path '\(shown)': \(why)", key: shown)
        }
        let bytes = relative.utf8
        if bytes.isEmpty { throw reject("empty") }
        if bytes.contains(0) { throw reject("contains a NUL byte") }
        if bytes.first == UInt8(ascii: "/") || bytes.first == UInt8(ascii: "~") { throw reject("absolute paths are not allowed") }
        if bytes.contains(UInt8(ascii: "\\")) { throw reject("backslashes are not allowed") }
        for component in components(relative, omittingEmpty: false) {
            if component.isEmpty { throw reject("empty path component") }
            if component.utf8.elementsEqual("..".utf8) || component.utf8.elementsEqual(".".utf8) { throw reject("'.' and '..' are not allowed") }
        }
        if bytes.count > 1024 { throw reject("longer than 1024 bytes") }
    }

    /// Writes atomically and returns the file's record (path relative to the run folder, SHA-256).
    @discardableResult
    public func write(_ relative: String, _ data: Data, within subfolder: String? = nil) throws -> FileRecord {
        let full = try path(relative, within: subfolder)
        try Self.atomicWrite(data, to: full)
        return FileRecord(path: relative, sha256: SHA256.hex(data))
    }

    @discardableResult
    public func write(_ relative: String, text: String, within subfolder: String? = nil) throws -> FileRecord {
        try write(relative, Data(text.utf8), within: subfolder)
    }

    public func read(_ relative: String) throws -> Data {
        let full = try path(relative)
        guard let data = FileManager.default.contents(atPath: full) else {
            throw EngineError(code: .missingFile, message: "\(relative) does not exist in the run folder \(root)", file: full)
        }
        return data
    }

    public func readText(_ relative: String) throws -> String { String(decoding: try read(relative), as: UTF8.self) }

    public func fileExists(_ relative: String) -> Bool {
        guard let full = try? path(relative) else { return false }
        return FileManager.default.fileExists(atPath: full)
    }

    /// The record of a file as it is now, or nil if it does not exist.
    public func record(_ relative: String) -> FileRecord? {
        guard let full = try? path(relative), let data = FileManager.default.contents(atPath: full) else { return nil }
        return FileRecord(path: relative, sha256: SHA256.hex(data))
    }

    /// All regular files under a subfolder, relative to the run folder, sorted.
    public func files(in subfolder: String) -> [String] {
        let base = root + "/" + subfolder
        guard let enumerator = FileManager.default.enumerator(atPath: base) else { return [] }
        var result: [String] = []
        while let item = enumerator.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: base + "/" + item, isDirectory: &isDir), !isDir.boolValue,
                !(item as NSString).lastPathComponent.hasPrefix(".tmp-")
            {
                result.append(subfolder + "/" + item)
            }
        }
        return result.sorted()
    }

    /// temp file in the same folder → write → fsync → rename → fsync the folder.
    public static func atomicWrite(_ data: Data, to path: String) throws {
        let directory = parent(of: path)
        try makeDirectories(directory, what: "cannot create the folder")
        let temp = directory + "/.tmp-\(UUID().uuidString)"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ioError("cannot create a file in this folder", path: directory) }
        var ok = writeAll(fd, data)
        if ok && fsync(fd) != 0 { ok = false }
        let savedErrno = errno
        close(fd)
        guard ok else {
            unlink(temp)
            errno = savedErrno
            throw ioError("cannot write the file", path: path)
        }
        guard rename(temp, path) == 0 else {
            let e = ioError("cannot move the new file into place", path: path)
            unlink(temp)
            throw e
        }
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            fsync(dirFD)
            close(dirFD)
        }
    }

    /// Writes all of `data` to `fd`; false on an error (errno says which).
    private static func writeAll(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }

    /// A file of a throw-away folder (a test workspace, a diff's two sides, ctags' copy): written plainly, without the
    /// temporary file, fsync and rename of `atomicWrite`, since nothing reads it after a crash.
    public static func scratchWrite(_ data: Data, to path: String) throws {
        try makeDirectories(parent(of: path), what: "cannot create the folder")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw ioError("cannot create the file", path: path) }
        defer { close(fd) }
        guard writeAll(fd, data) else { throw ioError("cannot write the file", path: path) }
    }

    /// `files` written into the throw-away folder `root` (`scratchWrite`) on a dispatch thread, so copying a large
    /// project never holds one of Swift's cooperative threads. Returns the paths written; with `skipFailures`, a file
    /// that cannot be written is left out instead of failing the rest.
    @discardableResult
    public static func scratchWrite(_ files: [(path: String, data: Data)], into root: String, skipFailures: Bool = false) async throws -> [String] {
        try await BlockingExecutor.run {
            var written: [String] = []
            for file in files {
                do {
                    try scratchWrite(file.data, to: root + "/" + file.path)
                    written.append(file.path)
                } catch where skipFailures {
                    continue
                }
            }
            return written
        }
    }

    static func ioError(_ what: String, path: String) -> EngineError {
        let text = String(cString: strerror(errno))
        var hint = ""
        if errno == EROFS || errno == EACCES || errno == EPERM { hint = ". Make state_dir writable by the worker (systemd: ReadWritePaths)." }
        if errno == ENOSPC || errno == EDQUOT { hint = ". Free disk space on the state_dir file system." }
        return EngineError(code: .io, message: "\(what): \(text)\(hint)", file: path)
    }
}

/// A file in the run folder and its SHA-256, as TRACE.json records it.
public struct FileRecord: Codable, Sendable, Hashable {
    public var path: String
    public var sha256: String

    public init(path: String, sha256: String) {
        self.path = path
        self.sha256 = sha256
    }
}
