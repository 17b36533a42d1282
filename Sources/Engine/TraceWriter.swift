import Dispatch
import Foundation
import JSON

/// The single writer of one run's TRACE.json. Every entry it appends extends an HMAC chain keyed by the
/// installation's `TraceKey`; opening a trace whose chain is broken is an error.
///
/// Its code runs on a serial dispatch queue of its own (`BlockingExecutor`), not on Swift's cooperative pool: every
/// append ends in an fsync. An append writes that entry only (`TraceLayout`), so it costs the same at the thousandth
/// entry as at the first.
public actor TraceWriter {
    public let folder: RunFolder
    public private(set) var document: TraceDocument
    let key: TraceKey
    /// TRACE.json's length as this writer last left it: where the next entry goes (over the closing `]}`).
    private var length: Int
    private let executor = BlockingExecutor(label: "autonomy-trace")

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Opens the run's trace, creating it when absent. A TRACE.json that is not valid JSON (a torn last append is cut
    /// back to the last whole entry first), or whose chain does not verify, is an error. The file is then written
    /// once, whole and atomically, in `TraceLayout`.
    public init(folder: RunFolder, run: TraceDocument.Run, key: TraceKey) throws {
        self.folder = folder
        self.key = key
        var doc: TraceDocument
        if let existing = try Self.read(folder: folder) {
            if let problem = existing.chainProblem(key: key) ?? existing.indexProblem(folder: folder) {
                throw EngineError(code: .corrupt, message: "TRACE.json does not verify at \(problem). Something other than the worker changed it; `autonomy trace --verify` shows the details, and the run cannot continue from it.", file: folder.tracePath)
            }
            doc = existing
            if doc.version >= 2, doc.run.flowRunID != run.flowRunID {
                throw EngineError(code: .corrupt, message: "TRACE.json belongs to flow run \(doc.run.flowRunID), not \(run.flowRunID); the run cannot continue from it", file: folder.tracePath)
            }
            doc.run = run
            if doc.version >= 2 { doc.headerHMAC = try doc.expectedHeaderHMAC(key) }
        } else {
            doc = TraceDocument(run: run)
            doc.headerHMAC = try doc.expectedHeaderHMAC(key)
            try TraceIndex.write(TraceIndex(entries: 0, lastHMAC: ""), folder: folder)
        }
        let data = try TraceLayout.document(doc)
        try RunFolder.atomicWrite(data, to: folder.tracePath)
        self.document = doc
        self.length = data.count
    }

    /// The run's trace, or nil when it has none. A last append cut short by a crash is left out (the file itself is
    /// mended by the next writer that opens it).
    public static func read(folder: RunFolder) throws -> TraceDocument? {
        guard let data = FileManager.default.contents(atPath: folder.tracePath) else { return nil }
        do {
            return try JSONCoding.decoder.decode(TraceDocument.self, from: data)
        } catch {
            if let mended = TraceLayout.mended(data), let document = try? JSONCoding.decoder.decode(TraceDocument.self, from: mended) { return document }
            throw EngineError(code: .corrupt, message: "TRACE.json is not valid: \(error). Only the worker writes it (whole when it opens it, an entry at a time after), so something else wrote it.", file: folder.tracePath)
        }
    }

    public func append(_ entry: TraceEntry) throws {
        var entry = entry
        let signed = document.version >= 2
        if signed { entry.sequence = document.entries.count + 1 }
        entry.previousHMAC = document.entries.last?.hmac ?? ""
        entry.hmac = try entry.expectedHMAC(key, flowRunID: signed ? document.run.flowRunID : nil)
        TraceObjects.keep(entry.inputs + entry.outputs, in: folder)
        let written = try TraceLayout.append(entry, first: document.entries.isEmpty, to: folder.tracePath, length: length)
        document.entries.append(entry)
        length = written
        // After TRACE.json: a stop between the two leaves the index one entry behind, which verifies.
        if signed { try TraceIndex.write(TraceIndex(entries: document.entries.count, lastHMAC: entry.hmac ?? ""), folder: folder) }
    }

    public var entries: [TraceEntry] { document.entries }
}

/// How TRACE.json is laid out so that an entry is appended in place: the header on the first line with the entries
/// array last, one entry per line, and the closing `]}` on a line of its own. Still one JSON document.
///
///     {"version":2,"run":{…},"header_hmac":"…","entries":[
///     {"id":"…",…}
///     ,{"id":"…",…}
///     ]}
///
/// An append writes `,<entry>\n]}\n` over the old closing line and fsyncs; a crash part-way leaves a torn last line,
/// which `mended` cuts back to the last whole entry (the index, written after the append, never counts a torn one).
enum TraceLayout {
    static let closing = Data("]}\n".utf8)

    static func document(_ document: TraceDocument) throws -> Data {
        let encoder = JSONCoding.encoder
        var data = Data("{\"version\":\(document.version),\"run\":".utf8) + (try encoder.encode(document.run))
        if let hmac = document.headerHMAC { data += Data(",\"header_hmac\":".utf8) + (try encoder.encode(hmac)) }
        data += Data(",\"entries\":[\n".utf8)
        for (i, entry) in document.entries.enumerated() {
            if i > 0 { data.append(UInt8(ascii: ",")) }
            data.append(try encoder.encode(entry))
            data.append(UInt8(ascii: "\n"))
        }
        return data + closing
    }

    /// Writes `entry` over the closing line of a TRACE.json `length` bytes long; returns the new length.
    static func append(_ entry: TraceEntry, first: Bool, to path: String, length: Int) throws -> Int {
        var bytes = Data(first ? [] : [UInt8(ascii: ",")])
        bytes.append(try JSONCoding.encoder.encode(entry))
        bytes.append(UInt8(ascii: "\n"))
        bytes.append(closing)
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw RunFolder.ioError("cannot open TRACE.json to append an entry", path: path) }
        defer { close(fd) }
        let offset = length - closing.count
        let ok = bytes.withUnsafeBytes { buffer -> Bool in
            var done = 0
            while done < buffer.count {
                let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                done += n
            }
            return true
        }
        guard ok, ftruncate(fd, off_t(offset + bytes.count)) == 0, fdatasync(fd) == 0 else {
            throw RunFolder.ioError("cannot append an entry to TRACE.json", path: path)
        }
        return offset + bytes.count
    }

    /// A TRACE.json whose last append was cut short, with that torn line removed and the document closed again; nil
    /// when the header itself is not whole.
    static func mended(_ data: Data) -> Data? {
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard let header = lines.first, header.last == UInt8(ascii: "[") else { return nil }
        lines.removeFirst()
        var kept = Data(header) + Data("\n".utf8)
        for (i, line) in lines.enumerated() {
            let body = i > 0 && line.first == UInt8(ascii: ",") ? line.dropFirst() : line[...]
            guard (try? JSONCoding.decoder.decode(TraceEntry.self, from: Data(body))) != nil else { break }
            kept.append(Data(line))
            kept.append(UInt8(ascii: "\n"))
        }
        return kept + closing
    }
}

/// A serial executor on a dispatch queue of its own: an actor that does blocking file I/O (fsync) uses it, so the I/O
/// never holds one of Swift's cooperative threads (there are as many as cores).
public final class BlockingExecutor: SerialExecutor, @unchecked Sendable {  // the queue is thread-safe
    private let queue: DispatchQueue

    public init(label: String) { queue = DispatchQueue(label: label, qos: .utility) }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }

    /// Runs `body` on a dispatch thread (not one of Swift's cooperative threads) and returns its result: for blocking
    /// file work outside an actor (copying a test workspace).
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .utility).async { continuation.resume(with: Result { try body() }) }
        }
    }
}
