import CCrypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The installation's secret that chains TRACE.json: `<state_dir>/.trace-key` (32 random bytes, mode 0600),
/// made once by the first worker and shared by every worker of the state folder. It never enters a run
/// folder, the sandbox, a log or Prefect, so nothing that can write a run's files can forge an entry.
public struct TraceKey: Sendable {
    public static let fileName = ".trace-key"
    let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// A key for tests and throwaway folders.
    public static func random() -> TraceKey {
        var generator = SystemRandomNumberGenerator()
        return TraceKey(bytes: (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// Reads the key of `stateDir`, creating it when `create` and it does not exist yet (two workers racing
    /// both end up with the one that was linked first).
    public static func load(stateDir: String, create: Bool = true) throws -> TraceKey {
        let path = stateDir + "/" + fileName
        if let data = FileManager.default.contents(atPath: path) { return try parse(data, path: path) }
        guard create else {
            throw EngineError(code: .missingFile, message: "\(path) does not exist: it is made by the first worker or `autonomy run` that writes a trace in this state_dir; point --config at the config.yml whose state_dir holds the run", file: path)
        }
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let key = random()
        let temporary = path + ".\(UUID().uuidString)"
        try RunFolder.atomicWrite(Data(key.bytes.map { String(format: "%02x", $0) }.joined().utf8 + [0x0a]), to: temporary)
        chmod(temporary, 0o600)
        defer { unlink(temporary) }
        if link(temporary, path) != 0 && errno != EEXIST {
            throw EngineError(code: .io, message: "cannot create \(path): \(String(cString: strerror(errno))). Make state_dir writable by the worker.", file: path)
        }
        return try parse(FileManager.default.contents(atPath: path) ?? Data(), path: path)
    }

    static func parse(_ data: Data, path: String) throws -> TraceKey {
        let hex = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex), let byte = UInt8(hex[index..<next], radix: 16) {
            bytes.append(byte)
            index = next
        }
        guard bytes.count == 32, index == hex.endIndex else {
            throw EngineError(code: .corrupt, message: "\(path) is not a trace key (64 hex digits). Restore it from a backup; without it no TRACE.json of this state_dir verifies.", file: path)
        }
        return TraceKey(bytes: bytes)
    }

    /// HMAC-SHA-256 of `data`, hex.
    public func mac(_ data: Data) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { key in
            data.withUnsafeBytes { message in
                HMAC(EVP_sha256(), key.baseAddress, Int32(key.count), message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count, &digest, &length)
            }
        }
        precondition(ok != nil && length == 32, "HMAC(SHA-256) failed")
        return digest.map { String(format: "%02x", $0) }.joined()
    }
}
