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
