import Engine
import Foundation
import JSON
import LLM
import Logging

extension Stages {
    /// Corrections a model gets, in the same attempt, for blocks that did not apply.
    static let maxCorrections = 2

    /// Edits the tree as the earlier rounds left it (the source, every earlier change) and writes the result into
    /// `implementations/`: every file that now differs from the source, whole, with a manifest. The model answers with
    /// search/replace blocks (the whole-file JSON of older runs is still read); a block that does not apply goes back
    /// to it in the same attempt with why and the closest lines, up to `maxCorrections` times. In a fix round the
    /// prompt also holds the failing tests' output. The model may answer with `"decision_required"` instead.
    static func implement(_ c: StageContext) async throws -> StageOutcome {
        let (spec, specInputs) = try c.specification()
        let (architecture, archRecord) = try c.readRecorded("designs/ARCHITECTURE.md")
        let (decisions, decisionRecords) = await c.decisionsSummary()
        var inputs = specInputs + [archRecord] + decisionRecords
        var failures = "none"
        if c.fixingTests {
            let (results, resultsRecord) = try c.readRecorded("tests/RESULTS.md")
            failures = String(normalizeTimings(results).suffix(failureBudget))
            if let baseline = Baseline.load(c.folder), !baseline.failing.isEmpty, c.hiddenTests.isEmpty {
                failures += "\n\nThese tests already failed before the build (pre-existing: not yours to fix unless the task says so): " + baseline.failing.prefix(30).joined(separator: ", ")
            }
            inputs.append(resultsRecord)
        }
        // The changes so far as a diff against the source; the files themselves are in the code part, as they are
        // now (a fix round edits them; nothing is reverted by leaving a file out).
        var previous = "none"
        let earlier = c.folder.files(in: "implementations").filter { !$0.hasSuffix("MANIFEST.json") }
        if !earlier.isEmpty || !ProjectSource.deletedPaths(c.folder).isEmpty {
            previous = try await ChangeSet.ofImplementation(c.folder, hidden: c.hiddenTests).promptText()
            inputs += earlier.compactMap { c.folder.record($0) }
        }
        var values = ["project_name": c.project, "spec": spec, "architecture": architecture, "decisions": decisions, "feedback": c.feedback ?? "none", "failures": failures, "previous_implementation": previous, "source": ""]
        let fixed = try c.checkBudget(values)
        let texts = try c.promptTree()
        let focus = [spec, c.task ?? "", c.feedback ?? "", c.fixingTests ? failures : ""].joined(separator: "\n")
        let context = await c.codeContext(texts, focus: focus, fixed: fixed, requests: c.maxRequests)
        values["source"] = context.text
        let hints = ["feedback": c.feedback ?? "none", "failures": failures]
        let before = try ProjectSource.mergedTree(c.folder)
        var x = try await c.converse(values: values, hints: hints, texts: texts)

        // Blocks, or only a json part (a change that deletes or renames files, or a question); else whole files.
        let first = EditBlocks.parse(x.response.text)
        guard EditBlocks.looksLikeBlocks(x.response.text) || (first.structured != nil && first.structured?["files"] == nil) else {
            return try await wholeFiles(c, response: x.response, entry: x.entry, inputs: inputs, before: before)
        }
        // The tree as the earlier rounds left it; the model may edit what it was shown whole, and new files.
        let base = try ProjectSource.mergedTree(c.folder, restoring: c.hiddenTests)
        var text: [String: String] = [:]
        for file in base { if let string = String(data: file.data, encoding: .utf8), !string.contains("\u{0}") { text[file.path] = string } }
        // Files seen in full in an earlier attempt stay editable (its manifest's "seen").
        let seenBefore = (try? JSONValue.parse(c.folder.readText("implementations/MANIFEST.json")))?["seen"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let editable = Set(context.full).union(x.read).union(earlier.map { String($0.dropFirst("implementations/".count)) }).union(seenBefore)
        var applier = EditApplier(files: text, editable: editable)
        let sourcePaths = Set(ProjectSource.manifest(in: c.folder)?.paths ?? [])
        let touched = first.blocks.map(\.path) + (first.structured?["deleted"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            + (first.structured?["renamed"]?.arrayValue ?? []).compactMap { $0["from"]?.stringValue }
        var allowed = Set<String>()
        switch try await protectedGate(c, touched, source: sourcePaths, inputs: inputs, entry: x.entry) {
        case .ask(let outcome): return outcome
        case .allowed(let paths): allowed = paths
        case .proceed: break
        }
        var stats = (blocks: 0, first: 0, corrected: 0, failed: 0)
        var structured: JSONValue?
        var round = 0
        while true {
            let parsed = EditBlocks.parse(x.response.text)
            if parsed.structured != nil { structured = parsed.structured }
            var problems = parsed.malformed.map { "- \($0)" }
            for block in parsed.blocks {
                if round == 0 { stats.blocks += 1 }
                if let reason = c.protectedReason(block.path, source: sourcePaths, allowed: allowed) {
                    problems.append("- the block for \(block.path) (line \(block.line)): \(reason)")
                    continue
                }
                switch applier.apply(block) {
                case .applied, .appliedLoosely: if round == 0 { stats.first += 1 } else { stats.corrected += 1 }
                case .failed(let why): problems.append("- the block for \(block.path) (line \(block.line)): \(why)")
                }
            }
            if round == 0 { stats.blocks += parsed.malformed.count }
            if problems.isEmpty { break }
            guard round < maxCorrections else {
                stats.failed = max(0, stats.blocks - stats.first - stats.corrected)
                throw EngineError(code: .invalidInput, message: "\(problems.count) edit block(s) still did not apply after \(maxCorrections) correction(s); nothing was written:\n" + problems.prefix(5).joined(separator: "\n"))
            }
            round += 1
            c.logger.info("edit blocks did not apply; asking the model to correct them", metadata: ["problems": "\(problems.count)", "correction": "\(round)"])
            x.turns += [LLMTurn(.assistant, x.response.text), LLMTurn(.user, correctionPrompt(problems))]
            (x.response, x.entry) = try await c.callModel(values: values, hints: hints.merging(["correction": "\(round)"]) { _, b in b }, turns: x.turns)
            // A correction may first ask to read the file as it now stands.
            let readBefore = x.read
            try await c.answerRequests(&x, values: values, hints: hints) { CodeContext.promptTree(applier.files.map { ($0.key, Data($0.value.utf8)) }, hidden: c.hiddenTests) }
            applier.editable?.formUnion(x.read.subtracting(readBefore))
        }
        stats.failed = max(0, stats.blocks - stats.first - stats.corrected)

        // Deletions and renames from the answer's json part, then everything that now differs from the source.
        var deleted = Set(ProjectSource.deletedPaths(c.folder))
        var files = applier.files
        for path in structured?["deleted"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
            try check(c, path, verb: "deletes", source: sourcePaths, allowed: allowed)
            guard files.removeValue(forKey: path) != nil else {
                throw EngineError(code: .invalidInput, message: "the model's implement answer deletes '\(path)', which the tree does not have; nothing was written", key: path)
            }
            if sourcePaths.contains(path) { deleted.insert(path) }
        }
        for rename in structured?["renamed"]?.arrayValue ?? [] {
            guard let from = rename["from"]?.stringValue, let to = rename["to"]?.stringValue, let content = files[from] else {
                throw EngineError(code: .invalidInput, message: "the model's implement answer renames a file the tree does not have (\(rename.jsonText())); nothing was written")
            }
            try check(c, from, verb: "renames", source: sourcePaths, allowed: allowed)
            try check(c, to, verb: "renames a file to", source: sourcePaths, allowed: allowed)
            files[from] = nil
            files[to] = content
            if sourcePaths.contains(from) { deleted.insert(from) }
        }
        let original = Dictionary(try c.folder.files(in: "source").map { (String($0.dropFirst("source/".count)), try c.folder.read($0)) }, uniquingKeysWith: { a, _ in a })
        var changed = GeneratedFiles(files: files.filter { original[$0.key] != Data($0.value.utf8) }.sorted { $0.key < $1.key }.map { GeneratedFiles.File(path: $0.key, content: $0.value) })
        changed.deleted = deleted.filter { files[$0] == nil }.sorted()
        let summary = structured?["summary"]?.stringValue.map { String($0.prefix(500)) }
        let decision = try structured?["decision_required"].flatMap { $0.isNull ? nil : try GeneratedFiles.decisionRequest($0, stage: "implement") }
        let extra: [String: JSONValue] = [
            "summary": summary.map { .string($0) } ?? .null,
            "seen": .array(editable.union(applier.editable ?? []).sorted().map { .string($0) }),
            "edits": ["blocks": .int(stats.blocks), "applied_first": .int(stats.first), "applied_after_correction": .int(stats.corrected), "failed": .int(stats.failed), "corrections": .int(round)],
        ]
        var outputs = try changed.write(into: c.folder, subfolder: "implementations", manifest: extra)
        outputs.append(try await recordChanges(c, before: before, summary: summary))
        c.logger.info("implementation edited", metadata: ["blocks": "\(stats.blocks)", "applied_first": "\(stats.first)", "corrections": "\(round)", "files": "\(changed.files.count)"])
        var facts = StageFacts(decisionRequired: decision)
        facts.editBlocks = stats.blocks
        facts.editBlocksAppliedFirst = stats.first
        let what = "\(stats.blocks) edit block(s) (\(stats.first) applied at once\(round > 0 ? ", \(stats.corrected) after \(round) correction(s)" : ""))"
        return StageOutcome(inputs: inputs, outputs: outputs, summary: decision != nil ? "a decision is required: \(decision!.question.prefix(120))" : (summary.map { "\(what): \($0)" } ?? what), llm: x.entry, facts: facts)
    }

    static func check(_ c: StageContext, _ path: String, verb: String, source: Set<String>, allowed: Set<String> = []) throws {
        try ModelPaths.check(path, stage: "implement")
        if let reason = c.protectedReason(path, source: source, allowed: allowed) {
            throw EngineError(code: .invalidInput, message: "the model's implement answer \(verb) '\(path)': \(reason); nothing was written", key: path)
        }
    }

    enum ProtectedGate { case proceed, allowed(Set<String>), ask(StageOutcome) }

    /// An answer that changes the project's own tests: asks a person first (nothing written), goes on when a person
    /// allowed exactly these paths, and is refused, naming them, when the answer was anything else.
    static func protectedGate(_ c: StageContext, _ paths: [String], source: Set<String>, inputs: [FileRecord], entry: TraceEntry) async throws -> ProtectedGate {
        switch await c.protectedAnswer(paths, source: source) {
        case .none:
            return .proceed
        case .allowed:
            return .allowed(Set(paths))
        case .refused(let list):
            throw EngineError(code: .invalidInput, message: "the model's implement answer changes or deletes the project's own tests (\(list)), which were not allowed at the gate: it is one of the project's own tests, which the build may not change or delete; nothing was written")
        case .ask(let marker):
            let question = DecisionRequest(
                question: "\(marker)\n\nThe implementation changes or deletes these tests of the project. The project's tests are the measure of the build, so they are not the build's to change. Allow it? (refuse: the implementer runs again and may not touch them)",
                options: [Choice.allow.rawValue, Choice.refuse.rawValue], defaultOption: Choice.refuse.rawValue)
            c.logger.info("the implementation touches the project's own tests; asking a person", metadata: ["paths": "\(marker)"])
            return .ask(StageOutcome(inputs: inputs, outputs: [], summary: "a decision is required: the implementation changes the project's own tests", llm: entry, facts: StageFacts(decisionRequired: question)))
        }
    }

    /// What goes back to the model when blocks did not apply.
    static func correctionPrompt(_ problems: [String]) -> String {
        """
        Some of your edit blocks did not apply; the others did, and the files are as they left them.

        \(problems.joined(separator: "\n"))

        Answer with corrected SEARCH/REPLACE blocks for these only. A SEARCH part must quote the current file exactly \
        (whole lines, including indentation) and match one place.
        """
    }

    /// The whole-file JSON answer of older runs (and of the offline provider's first round).
    static func wholeFiles(_ c: StageContext, response: LLMResponse, entry: TraceEntry, inputs: [FileRecord], before: [(path: String, data: Data)]) async throws -> StageOutcome {
        let answer = try GeneratedFiles.parseAnswer(response.text, stage: "implement")
        var outputs: [FileRecord] = []
        if let files = answer.files {
            let known = Set(ProjectSource.manifest(in: c.folder)?.paths ?? [])
            var allowed = Set<String>()
            switch try await protectedGate(c, files.files.map(\.path) + files.deleted, source: known, inputs: inputs, entry: entry) {
            case .ask(let outcome): return outcome
            case .allowed(let paths): allowed = paths
            case .proceed: break
            }
            for path in files.deleted where !known.contains(path) {
                throw EngineError(code: .invalidInput, message: "the model's implement answer deletes '\(path)', which the project's source does not have; nothing was written")
            }
            for path in files.files.map(\.path) + files.deleted {
                if let reason = c.protectedReason(path, source: known, allowed: allowed) {
                    throw EngineError(code: .invalidInput, message: "the model's implement answer \(files.deleted.contains(path) ? "deletes" : "changes") '\(path)': \(reason); nothing was written", key: path)
                }
            }
            outputs = try files.write(into: c.folder, subfolder: "implementations")
            outputs.append(try await recordChanges(c, before: before, summary: nil))
            c.logger.info("implementation written", metadata: ["files": "\(files.files.count)"])
        }
        if let question = answer.decision {
            c.logger.info("the model asks a question instead of deciding", metadata: ["question": "\(question.question.prefix(200))"])
        }
        let summary = answer.decision != nil ? "a decision is required: \(answer.decision!.question.prefix(120))" : "\(answer.files?.files.count ?? 0) implementation file(s)\(c.fixingTests ? " fixing the failing tests" : "")"
        return StageOutcome(inputs: inputs, outputs: outputs, summary: summary, llm: entry, facts: StageFacts(decisionRequired: answer.decision))
    }

    /// `changes/implement-N.md`: the attempt's change as unified diffs, against the source and against the tree the
    /// attempt started from (the previous round), with the model's summary: what a reviewer reads (the UI's
    /// implementation artifact), never whole copies of files.
    static func recordChanges(_ c: StageContext, before: [(path: String, data: Data)], summary: String?) async throws -> FileRecord {
        let now = try ProjectSource.mergedTree(c.folder)
        let total = try await ChangeSet.between(try ChangeSet.sourceFiles(c.folder), now, hidden: c.hiddenTests)
        let round = try await ChangeSet.between(before, now, hidden: c.hiddenTests)
        var text = "# Implementation (implement-\(c.attempt))\n\n"
        if let summary { text += "Summary: \(MarkdownText.plain(summary))\n\n" }
        text += "## Against the source\n\n" + total.markdown(budget: 100_000) + "\n"
        if c.attempt > 1 || round != total {
            text += "\n## Against the previous round\n\n" + round.markdown(budget: 50_000) + "\n"
        }
        return try c.folder.write("changes/implement-\(c.attempt).md", text: text, within: "changes")
    }
}
