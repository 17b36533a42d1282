import Engine
import Foundation
import JSON
import Testing
import TestSupport

/// What the chain of version 1 missed: a run folder with its last entries cut off, or copied to another run id with
/// its header edited, still printed "verifies". Version 2 signs the header, puts the run's id and a sequence number
/// in every entry's HMAC, and keeps where the chain ends in the state folder's index.
@Suite("TRACE.json: truncated and copied")
struct TraceTruncationTests {
    static let key = TraceKey.random()

    func run(_ dir: TempDir, id: String = "run-a", entries: Int = 7) async throws -> RunFolder {
        let folder = RunFolder(stateDir: dir.path + "/state", runID: id)
        try folder.create()
        let trace = try TraceWriter(folder: folder, run: .init(flowRunID: id, flowRunName: "quiet-owl", deployment: "autonomous-build/default", parameters: ["gates": "ask"]), key: Self.key)
        for i in 1...entries {
            try await trace.append(TraceEntry(kind: .stage, stage: .design, attempt: i, status: "completed", message: "attempt \(i)"))
        }
        return folder
    }

    func edit(_ folder: RunFolder, _ change: (inout [String: JSONValue]) -> Void) throws {
        var document = try JSONValue.parse(String(contentsOfFile: folder.tracePath, encoding: .utf8)).objectValue ?? [:]
        change(&document)
        try JSONValue.object(document).jsonText().write(toFile: folder.tracePath, atomically: true, encoding: .utf8)
    }

    @Test func anIntactTraceVerifies() async throws {
        let dir = try TempDir()
        let folder = try await run(dir)
        let document = try #require(try TraceWriter.read(folder: folder))
        #expect(document.version == 2)
        #expect(document.verify(key: Self.key, folder: folder) == nil)
        #expect(document.entries.map(\.sequence) == Array(1...7))
    }

    @Test func entriesCutFromTheEndAreFound() async throws {
        let dir = try TempDir()
        let folder = try await run(dir)
        try edit(folder) { $0["entries"] = .array(Array(($0["entries"]?.arrayValue ?? []).dropLast(3))) }
        let document = try #require(try TraceWriter.read(folder: folder))
        #expect(document.chainProblem(key: Self.key) == nil)  // what version 1 checked: still a valid chain
        let problem = document.verify(key: Self.key, folder: folder)
        #expect(problem?.reason == "TRACE.json has 4 entries, the state folder's index recorded 7: entries were removed from its end", "\(String(describing: problem))")
        // The worker refuses to continue from it.
        #expect(throws: EngineError.self) { _ = try TraceWriter(folder: folder, run: .init(flowRunID: "run-a", flowRunName: "quiet-owl", deployment: "autonomous-build/default", parameters: ["gates": "ask"]), key: Self.key) }
    }

    @Test func aTraceCopiedToAnotherRunIsFound() async throws {
        let dir = try TempDir()
        let original = try await run(dir)
        let copy = RunFolder(stateDir: dir.path + "/state", runID: "run-b")
        try FileManager.default.copyItem(atPath: original.root, toPath: copy.root)
        #expect(try #require(try TraceWriter.read(folder: copy)).verify(key: Self.key, folder: copy)?.reason == "TRACE.json belongs to flow run run-a, not to run-b whose folder holds it (copied from another run)")
        // With the header edited to the new id, name and parameters: the header and the entries no longer verify.
        try edit(copy) { document in
            var run = document["run"]?.objectValue ?? [:]
            run["flow_run_id"] = "run-b"
            run["flow_run_name"] = "other-name"
            run["parameters"] = ["gates": "default"]
            document["run"] = .object(run)
        }
        let edited = try #require(try TraceWriter.read(folder: copy))
        #expect(edited.verify(key: Self.key, folder: copy)?.reason.hasPrefix("the run header's hmac does not match it") == true)
        // Even with the old header HMAC removed, as version 1 would have it: a version-2 chain needs the run id.
        try edit(copy) { document in
            document["version"] = 1
            document["header_hmac"] = nil
        }
        let downgraded = try #require(try TraceWriter.read(folder: copy))
        #expect(downgraded.verify(key: Self.key, folder: copy) != nil)
    }

    @Test func aStopBetweenTheTwoWritesStillVerifies() async throws {
        let dir = try TempDir()
        let folder = try await run(dir, entries: 3)
        let document = try #require(try TraceWriter.read(folder: folder))
        // The index as it was before the last append.
        let index = #"{"entries":2,"last_hmac":"\#(document.entries[1].hmac ?? "")"}"#
        try index.write(toFile: TraceIndex.path(folder), atomically: true, encoding: .utf8)
        #expect(document.verify(key: Self.key, folder: folder) == nil)
        let trace = try TraceWriter(folder: folder, run: document.run, key: Self.key)
        try await trace.append(TraceEntry(kind: .stage, stage: .implement, attempt: 1, status: "completed"))
        #expect(try #require(try TraceWriter.read(folder: folder)).verify(key: Self.key, folder: folder) == nil)
    }

    @Test func aTraceWithoutItsIndexEntryIsFound() async throws {
        let dir = try TempDir()
        let folder = try await run(dir, entries: 2)
        try FileManager.default.removeItem(atPath: TraceIndex.path(folder))
        let problem = try #require(try TraceWriter.read(folder: folder)).verify(key: Self.key, folder: folder)
        #expect(problem?.reason.hasPrefix("the state folder's index has no record of this run") == true)
    }
}
