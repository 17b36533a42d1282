import Engine
import Foundation
import JSON
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("TRACE.json HMAC chain and decisions")
struct TraceChainTests {
    struct Run {
        let dir: TempDir
        let folder: RunFolder
        let key = TraceKey.random()
        let trace: TraceWriter

        init() throws {
            dir = try TempDir()
            folder = RunFolder(stateDir: dir.path, runID: "r1")
            try folder.create()
            trace = try TraceWriter(folder: folder, run: .init(flowRunID: "r1", flowRunName: nil, deployment: nil, parameters: [:]), key: key)
        }

        /// Edits TRACE.json's entries as an attacker with write access to the run folder would.
        func rewrite(_ change: (inout [[String: JSONValue]]) -> Void) throws {
            var document = try JSONValue.parse(String(contentsOfFile: folder.tracePath, encoding: .utf8)).objectValue ?? [:]
            var entries = (document["entries"]?.arrayValue ?? []).compactMap(\.objectValue)
            change(&entries)
            document["entries"] = .array(entries.map { .object($0) })
            try JSONValue.object(document).jsonText().write(toFile: folder.tracePath, atomically: true, encoding: .utf8)
        }

        func read() throws -> TraceDocument { try #require(try TraceWriter.read(folder: folder)) }
    }

    func threeEntries() async throws -> Run {
        let run = try Run()
        let design = try run.folder.write("designs/ARCHITECTURE.md", text: "# design\n", within: "designs")
        try await run.trace.append(TraceEntry(kind: .llm, stage: .design, attempt: 1, costUSD: 0.1234567))
        try await run.trace.append(TraceEntry(kind: .stage, stage: .design, attempt: 1, status: "completed", outputs: [design]))
        try await run.trace.append(TraceEntry(kind: .stage, stage: .implement, attempt: 1, status: "completed", inputs: [design]))
        return run
    }

    @Test func anUntouchedTraceVerifiesAfterAReadAndWrite() async throws {
        let run = try await threeEntries()
        let document = try run.read()
        #expect(document.entries.map(\.previousHMAC) == ["", document.entries[0].hmac, document.entries[1].hmac])
        #expect(document.verify(key: run.key, folder: run.folder) == nil)
        // Reopening (as after a restart) keeps the chain and extends it.
        let reopened = try TraceWriter(folder: run.folder, run: document.run, key: run.key)
        try await reopened.append(TraceEntry(kind: .command, stage: .test, attempt: 1))
        #expect(try run.read().verify(key: run.key, folder: run.folder) == nil)
    }

    @Test func aChangedEntryIsTheFirstProblem() async throws {
        let run = try await threeEntries()
        try run.rewrite { $0[1]["status"] = "failed" }
        let problem = try #require(try run.read().chainProblem(key: run.key))
        #expect(problem.index == 2)
        #expect(problem.reason.hasPrefix("its hmac does not match its content"))
        #expect(throws: EngineError.self) { try TraceWriter(folder: run.folder, run: .init(flowRunID: "r1", flowRunName: nil, deployment: nil, parameters: [:]), key: run.key) }
    }

    @Test func removedInsertedAndUnsignedEntriesBreakTheChain() async throws {
        let removed = try await threeEntries()
        try removed.rewrite { $0.remove(at: 1) }
        #expect(try removed.read().chainProblem(key: removed.key)?.index == 2)
        #expect(try removed.read().chainProblem(key: removed.key)?.reason.contains("previous_hmac") == true)

        let added = try await threeEntries()
        try added.rewrite { entries in
            var forged = entries[2]
            forged["id"] = "forged"
            forged.removeValue(forKey: "hmac")
            entries.append(forged)
        }
        #expect(try added.read().chainProblem(key: added.key) == TraceProblem(index: 4, entryID: "forged", reason: "has no hmac (written before TRACE.json was chained, or added by hand)"))

        let otherKey = try await threeEntries()
        // Another key: the signed header is the first thing that does not verify.
        #expect(try otherKey.read().chainProblem(key: TraceKey.random())?.index == 0)
    }

    @Test func aChangedFileIsReportedWithItsEntry() async throws {
        let run = try await threeEntries()
        try "# edited\n".write(toFile: run.folder.root + "/designs/ARCHITECTURE.md", atomically: true, encoding: .utf8)
        let problem = try #require(try run.read().verify(key: run.key, folder: run.folder))
        #expect(problem.index == 3)  // the newest record of the file is implement's input
        #expect(problem.reason.hasPrefix("designs/ARCHITECTURE.md has SHA-256 "))
        try FileManager.default.removeItem(atPath: run.folder.root + "/designs/ARCHITECTURE.md")
        #expect(try run.read().verify(key: run.key, folder: run.folder)?.reason == "designs/ARCHITECTURE.md is missing")
    }

    @Test func onlyDecisionsTheTraceRecordsCount() async throws {
        let run = try Run()
        let decision = Decision(gate: "design-review", n: 1, stage: .design, stageAttempt: 1, question: "q", options: ["approve", "revise", "abort"], choice: "revise", comment: "c", decidedBy: "alice", defaulted: false, answeredAt: Date(), flowRunID: "r1", pauseKey: "design-review-1", traceEntryID: nil, promptSHA256: nil)
        let file = try run.folder.write(decision.fileName, try JSONCoding.prettyEncoder.encode(decision), within: "decisions")
        try await run.trace.append(TraceEntry(kind: .decision, stage: .design, attempt: 1, outputs: [file], decisionRef: decision.fileName))
        #expect(Decision.all(in: run.folder, trace: await run.trace.document).map(\.choice) == ["revise"])

        // Forged: a file no entry records, and a recorded file changed afterwards.
        var forged = decision
        forged.gate = "test-failure"
        forged.choice = "accept"
        try run.folder.write(forged.fileName, try JSONCoding.prettyEncoder.encode(forged), within: "decisions")
        #expect(Decision.all(in: run.folder, trace: await run.trace.document).map(\.gate) == ["design-review"])
        var changed = decision
        changed.choice = "approve"
        try run.folder.write(decision.fileName, try JSONCoding.prettyEncoder.encode(changed), within: "decisions")
        #expect(Decision.all(in: run.folder, trace: await run.trace.document).isEmpty)
    }

    @Test func theKeyIsMadeOnceOwnerOnlyAndChecked() throws {
        let dir = try TempDir()
        let first = try TraceKey.load(stateDir: dir.path)
        let second = try TraceKey.load(stateDir: dir.path)
        #expect(first.mac(Data("x".utf8)) == second.mac(Data("x".utf8)))
        var info = stat()
        stat(dir.path + "/" + TraceKey.fileName, &info)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == [TraceKey.fileName])

        let empty = try TempDir()
        #expect(throws: EngineError.self) { try TraceKey.load(stateDir: empty.path, create: false) }
        try "not a key\n".write(toFile: empty.path + "/" + TraceKey.fileName, atomically: true, encoding: .utf8)
        #expect(throws: EngineError.self) { try TraceKey.load(stateDir: empty.path) }
    }
}
