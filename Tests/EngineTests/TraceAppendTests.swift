import Engine
import Foundation
import JSON
import Testing
import TestSupport

/// TRACE.json grows by one entry per append, written in place (it used to be rewritten whole and fsynced at every
/// append, so a long run's trace cost O(entries²) bytes); a stop part-way through an append is mended on the next open.
@Suite("TRACE.json: appends in place")
struct TraceAppendTests {
    static let key = TraceKey.random()

    static func open(_ folder: RunFolder) throws -> TraceWriter {
        try TraceWriter(folder: folder, run: .init(flowRunID: folder.runID, flowRunName: "quiet-owl", deployment: "autonomous-build/default", parameters: ["gates": "ask", "ratio": .double(0.1)]), key: key)
    }

    static func entry(_ i: Int) -> TraceEntry {
        TraceEntry(kind: .stage, stage: .implement, attempt: i, status: "completed", message: "attempt \(i): \(String(repeating: "x", count: 200))")
    }

    static func inode(_ path: String) throws -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw TestFailure("cannot stat \(path)") }
        return UInt64(info.st_ino)
    }

    @Test func eachAppendWritesOnlyItsEntry() async throws {
        let dir = try TempDir()
        let folder = RunFolder(stateDir: dir.path + "/state", runID: "run-append")
        try folder.create()
        let trace = try Self.open(folder)
        let inode = try Self.inode(folder.tracePath)
        var sizes: [Int] = []
        for i in 1...300 {
            try await trace.append(Self.entry(i))
            sizes.append(try FileManager.default.attributesOfItem(atPath: folder.tracePath)[.size] as? Int ?? 0)
        }
        // The same file all along (no temporary file renamed over it), each append adding about one entry's bytes.
        #expect(try Self.inode(folder.tracePath) == inode)
        let growth = zip(sizes.dropFirst(), sizes).map { $0 - $1 }
        #expect(Set(growth).count <= 3 && growth.allSatisfy { $0 > 200 && $0 < 1200 }, "\(Set(growth))")
        // Still one JSON document that verifies, the entries in order.
        let document = try #require(try TraceWriter.read(folder: folder))
        #expect(document.verify(key: Self.key, folder: folder) == nil)
        #expect(document.entries.map(\.attempt) == Array(1...300))
        #expect(try JSONValue.parse(String(contentsOfFile: folder.tracePath, encoding: .utf8))["entries"]?.arrayValue?.count == 300)
        #expect(document.run.parameters["ratio"] == .double(0.1))
    }

    @Test func anAppendCutShortIsMendedOnTheNextOpen() async throws {
        let dir = try TempDir()
        let folder = RunFolder(stateDir: dir.path + "/state", runID: "run-torn")
        try folder.create()
        let trace = try Self.open(folder)
        for i in 1...3 { try await trace.append(Self.entry(i)) }
        let whole = try Data(contentsOf: URL(fileURLWithPath: folder.tracePath))
        let index = try Data(contentsOf: URL(fileURLWithPath: TraceIndex.path(folder)))
        try await trace.append(Self.entry(4))
        // The machine stopped during the fourth append: its line half written, the index not yet updated.
        let torn = try Data(contentsOf: URL(fileURLWithPath: folder.tracePath))
        for cut in [whole.count - 1, whole.count + 40, torn.count - 5] {
            try torn.prefix(cut).write(to: URL(fileURLWithPath: folder.tracePath))
            try index.write(to: URL(fileURLWithPath: TraceIndex.path(folder)))
            #expect(throws: (any Error).self) { try JSONValue.parse(String(contentsOfFile: folder.tracePath, encoding: .utf8)) }
            // Readers see the whole entries; a writer mends the file and goes on.
            #expect(try TraceWriter.read(folder: folder)?.entries.count == 3, "cut at \(cut)")
            let reopened = try Self.open(folder)
            #expect(await reopened.entries.count == 3)
            try await reopened.append(Self.entry(5))
            let document = try #require(try TraceWriter.read(folder: folder))
            #expect(document.verify(key: Self.key, folder: folder) == nil, "cut at \(cut)")
            #expect(document.entries.map(\.attempt) == [1, 2, 3, 5])
            _ = try JSONValue.parse(String(contentsOfFile: folder.tracePath, encoding: .utf8))
            // Back to the state before the fourth append for the next cut.
            try whole.write(to: URL(fileURLWithPath: folder.tracePath))
            try index.write(to: URL(fileURLWithPath: TraceIndex.path(folder)))
        }
    }

    @Test func aTraceWrittenWholeByAnOlderWorkerIsContinued() async throws {
        let dir = try TempDir()
        let folder = RunFolder(stateDir: dir.path + "/state", runID: "run-old")
        try folder.create()
        let trace = try Self.open(folder)
        for i in 1...2 { try await trace.append(Self.entry(i)) }
        // What the previous version left: the same document pretty-printed.
        let document = try #require(try TraceWriter.read(folder: folder))
        try JSONCoding.prettyEncoder.encode(document).write(to: URL(fileURLWithPath: folder.tracePath))
        let reopened = try Self.open(folder)
        try await reopened.append(Self.entry(3))
        let after = try #require(try TraceWriter.read(folder: folder))
        #expect(after.verify(key: Self.key, folder: folder) == nil)
        #expect(after.entries.map(\.attempt) == [1, 2, 3])
    }
}
