import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reading a folder that someone else may have filled (a spec folder, a folder source, what a sandboxed test left):
/// links are never followed, not while listing and not while reading, only regular files are read, and never more
/// than a limit.
public enum FileTree {
    public enum Kind: Sendable, Equatable {
        case file(size: Int)
        case link
        /// A device, FIFO or socket.
        case other
    }

    /// Every entry below `root` that is not a folder, as paths relative to `root`, sorted; folders are entered
    /// (never through a link) unless `skipFolder` says not to.
    public static func entries(_ root: String, skipFolder: (String) -> Bool = { _ in false }) -> [(path: String, kind: Kind)] {
        var found: [(String, Kind)] = []
        func walk(_ relative: String) {
            let full = relative.isEmpty ? root : root + "/" + relative
            guard let dir = opendir(full) else { return }
            defer { closedir(dir) }
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            for name in names.sorted() {
                let path = relative.isEmpty ? name : relative + "/" + name
                var info = stat()
                guard lstat(root + "/" + path, &info) == 0 else { continue }
                switch info.st_mode & S_IFMT {
                case S_IFDIR: if !skipFolder(path) { walk(path) }
                case S_IFREG: found.append((path, .file(size: Int(info.st_size))))
                case S_IFLNK: found.append((path, .link))
                default: found.append((path, .other))
                }
            }
        }
        walk("")
        return found.sorted { $0.0 < $1.0 }
    }

    /// The disk space taken below `root` (blocks of files and folders, links never followed), counting stops once it
    /// is over `stopAbove`.
    public static func diskUsage(_ root: String, stopAbove: Int = .max) -> Int {
        var total = 0
        // Paths as bytes: the names sandboxed code makes need not be UTF-8.
        var pending: [[CChar]] = [Array(root.utf8CString)]
        while let folder = pending.popLast(), total <= stopAbove {
            guard let dir = opendir(folder) else { continue }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 }).map { CChar(bitPattern: $0) }) }
                if name == [46] || name == [46, 46] { continue }
                var info = stat()
                guard fstatat(dirfd(dir), name + [0], &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                total += Int(info.st_blocks) * 512
                if info.st_mode & S_IFMT == S_IFDIR { pending.append(folder.dropLast() + [47] + name + [0]) }
            }
            closedir(dir)
        }
        return total
    }

    /// The regular file at `relative` below `root`, opened component by component without following a link, at most
    /// `limit` bytes (a larger file is refused).
    public static func readRegular(root: String, relative: String, limit: Int) throws -> Data {
        try RunFolder.checkRelative(relative)
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw EngineError(code: .io, message: "cannot open \(root): \(String(cString: strerror(errno)))") }
        let parts = relative.split(separator: "/").map(String.init)
        for (index, part) in parts.enumerated() {
            let last = index == parts.count - 1
            let next = openat(fd, part, (last ? O_RDONLY | O_NONBLOCK : O_RDONLY | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC)
            let failure = errno
            close(fd)
            guard next >= 0 else {
                let why = failure == ELOOP || failure == ENOTDIR ? "it is (or lies under) a symbolic link" : String(cString: strerror(failure))
                throw EngineError(code: .missingFile, message: "cannot read \(relative) in \(root): \(why)", file: root + "/" + relative)
            }
            fd = next
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw EngineError(code: .invalidInput, message: "\(relative) in \(root) is not a regular file", file: root + "/" + relative)
        }
        guard Int(info.st_size) <= limit else {
            throw EngineError(code: .invalidInput, message: "\(relative) in \(root) is \(info.st_size) bytes, over the limit of \(limit)", file: root + "/" + relative)
        }
        var data = Data(count: Int(info.st_size))
        var done = 0
        data.withUnsafeMutableBytes { buffer in
            while done < buffer.count {
                let n = read(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                done += n
            }
        }
        return data.prefix(done)
    }
}

extension FileTree {
    /// Removes the tree at `path` whatever its shape: folders of any depth (one descriptor at a time, no path-length
    /// limit), folders without permissions (made searchable and writable as the walk enters them), names that are not
    /// UTF-8, links removed and never followed. Each step back up is checked against the folder the walk came from,
    /// so a folder moved meanwhile cannot turn the walk elsewhere. Throws, naming what stayed, when something cannot
    /// be removed.
    public static func remove(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw removeError(path, errno)
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            guard unlink(path) == 0 else { throw removeError(path, errno) }
            return
        }
        var fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0, errno == EACCES, chmod(path, 0o700) == 0 { fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { throw removeError(path, errno) }
        // The folders above the current one: their identity, and the name (raw bytes) of the next one down in each.
        var ancestors: [(device: UInt64, inode: UInt64, name: [CChar])] = []
        func shown(_ last: [CChar]? = nil) -> String {
            ([path] + (ancestors.map(\.name) + (last.map { [$0] } ?? [])).map { String(decoding: $0.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self) }).joined(separator: "/")
        }
        defer { if fd >= 0 { close(fd) } }
        while true {
            _ = fchmod(fd, 0o700)
            var subfolder: [CChar]?
            for name in names(in: fd) {
                var entry = stat()
                guard fstatat(fd, name, &entry, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                if entry.st_mode & S_IFMT == S_IFDIR {
                    if subfolder == nil { subfolder = name }
                } else if unlinkat(fd, name, 0) != 0 {
                    throw removeError(shown(name), errno)
                }
            }
            if let name = subfolder {
                var child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if child < 0, errno == EACCES, fchmodat(fd, name, 0o700, 0) == 0 { child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                guard child >= 0 else { throw removeError(shown(name), errno) }
                var here = stat()
                fstat(fd, &here)
                ancestors.append((UInt64(here.st_dev), UInt64(here.st_ino), name))
                close(fd)
                fd = child
                continue
            }
            // Empty: step back up and remove it, or remove the top.
            guard let parent = ancestors.last else {
                close(fd)
                fd = -1
                guard rmdir(path) == 0 else { throw removeError(path, errno) }
                return
            }
            let up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            var upInfo = stat()
            guard up >= 0, fstat(up, &upInfo) == 0, UInt64(upInfo.st_dev) == parent.device, UInt64(upInfo.st_ino) == parent.inode else {
                if up >= 0 { close(up) }
                throw EngineError(code: .io, message: "cannot remove \(path): a folder inside it was moved while it was being removed; remove it by hand (rm -rf as root)")
            }
            close(fd)
            fd = up
            guard unlinkat(fd, parent.name, AT_REMOVEDIR) == 0 else { throw removeError(shown(), errno) }
            ancestors.removeLast()
        }
    }

    /// The names (NUL-terminated bytes) in the folder behind `fd`, without `.` and `..`; `fd` stays open.
    static func names(in fd: Int32) -> [[CChar]] {
        let copy = dup(fd)
        guard copy >= 0 else { return [] }
        guard let dir = fdopendir(copy) else {
            close(copy)
            return []
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [[CChar]] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 }).map { CChar(bitPattern: $0) }) + [0] }
            if name != [46, 0] && name != [46, 46, 0] { names.append(name) }
        }
        return names
    }

    static func removeError(_ path: String, _ code: Int32) -> EngineError {
        EngineError(code: .io, message: "cannot remove \(path.count > 300 ? "…" + path.suffix(300) : Substring(path)): \(String(cString: strerror(code))); remove it by hand (rm -rf as root)", file: String(path.prefix(1024)))
    }
}
