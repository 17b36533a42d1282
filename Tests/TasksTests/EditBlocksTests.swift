import Engine
import Foundation
import JSON
import Tasks
import Testing

/// Aider's search/replace blocks as models really write them, and the applier's rules: exactly one match, then
/// whitespace-tolerant, never twice or nowhere (with a "did you mean"), new files from an empty SEARCH.
@Suite("Search/replace blocks")
struct EditBlocksTests {
    static let calc = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"

    @Test func plainFencedAndPathInTheFence() {
        let answer = """
            I'll fix `add`.

            calc.py
            <<<<<<< SEARCH
            def add(a, b):
                return a - b
            =======
            def add(a, b):
                return a + b
            >>>>>>> REPLACE

            **pkg/util.py**
            ```python
            <<<<<<< SEARCH
            X = 1
            =======
            X = 2
            >>>>>>> REPLACE
            ```

            ```pkg/new.py
            <<<<<<< SEARCH
            =======
            print("new")
            >>>>>>> REPLACE
            ```

            ```json
            {"summary": "add adds", "deleted": ["old.py"]}
            ```
            """
        let parsed = EditBlocks.parse(answer)
        #expect(parsed.malformed.isEmpty, "\(parsed.malformed)")
        #expect(parsed.blocks.map(\.path) == ["calc.py", "pkg/util.py", "pkg/new.py"])
        #expect(parsed.blocks[0].replace == ["def add(a, b):", "    return a + b"])
        #expect(parsed.blocks[2].search.isEmpty)
        #expect(parsed.structured?["summary"] == "add adds")
        #expect(EditBlocks.looksLikeBlocks(answer))
        #expect(!EditBlocks.looksLikeBlocks(#"{"files": []}"#))
    }

    @Test func anAnswerCutOffIsReportedNotApplied() {
        let parsed = EditBlocks.parse("calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n")
        #expect(parsed.blocks.isEmpty)
        #expect(parsed.malformed == ["the block for calc.py at line 2 does not end with >>>>>>> REPLACE (the answer may have been cut off)"])
    }

    func block(_ path: String, _ search: String, _ replace: String) -> EditBlocks.Block {
        EditBlocks.Block(path: path, search: search.isEmpty ? [] : search.components(separatedBy: "\n"), replace: replace.components(separatedBy: "\n"), line: 1)
    }

    @Test func exactlyOnceThenLooselyNeverTwiceOrNowhere() {
        var applier = EditApplier(files: ["calc.py": Self.calc])
        // Twice: both functions return a - b.
        guard case .failed(let twice) = applier.apply(block("calc.py", "    return a - b", "    return a + b")) else { Issue.record("applied"); return }
        #expect(twice == "the SEARCH part matches 2 places in calc.py (lines 2, 6); include more surrounding lines so it matches exactly one")
        // Nowhere: the model misremembered the name; the closest lines are quoted with numbers.
        guard case .failed(let nowhere) = applier.apply(block("calc.py", "def plus(a, b):\n    return a - b", "def plus(a, b):\n    return a + b")) else { Issue.record("applied"); return }
        #expect(nowhere.hasPrefix("the SEARCH part matches nothing in calc.py. Did you mean these lines (calc.py as it is now)?\n"), "\(nowhere)")
        #expect(nowhere.contains("1: def add(a, b):\n2:     return a - b"), "\(nowhere)")
        #expect(applier.files["calc.py"] == Self.calc)
        // Whitespace off by a tab/indent: applied, re-indented like the file.
        #expect(applier.apply(block("calc.py", "def add(a, b):\n  return a - b", "def add(a, b):\n  return a + b")) == .appliedLoosely)
        #expect(applier.files["calc.py"] == "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
        // The next block sees the tree as the last one left it: now unique.
        #expect(applier.apply(block("calc.py", "    return a - b", "    return a - b  # checked")) == .applied)
        #expect(applier.files["calc.py"]?.hasSuffix("    return a - b  # checked\n") == true)
    }

    @Test func newFilesRefusedPathsAndFilesNotShown() {
        var applier = EditApplier(files: ["calc.py": Self.calc, "big.py": "x = 1\n"], editable: ["calc.py"])
        #expect(applier.apply(block("pkg/new.py", "", "print(1)")) == .applied)
        #expect(applier.files["pkg/new.py"] == "print(1)\n")
        #expect(applier.apply(block(".git/config", "", "[core]")) == .failed(".git/config may not be written: it is git's own folder (.git), which runs commands from its config and hooks"))
        #expect(applier.apply(block("../x.py", "", "1")) == .failed("../x.py is not a safe relative path inside the project"))
        #expect(applier.apply(block("missing.py", "a = 1", "a = 2")) == .failed("missing.py does not exist; to create it, leave the SEARCH part empty"))
        #expect(applier.apply(block("big.py", "x = 1", "x = 2")) == .failed(#"big.py was not shown to you in full; ask to read it first ({"read": ["big.py"]}), then edit it"#))
        #expect(applier.apply(block("calc.py", "", "overwrite")) == .failed("the SEARCH part for calc.py is empty, but the file exists: quote the lines to replace"))
    }

    /// The point of the format: a one-line fix in a long file is a few lines of answer, not the file.
    @Test func aOneLineFixInALongFileIsSmall() {
        var long = ""
        for i in 0..<2500 { long += "def f\(i)(x):\n    return x + \(i)\n" }
        long += "def target(x):\n    return x - 1\n"
        let answer = "big.py\n<<<<<<< SEARCH\ndef target(x):\n    return x - 1\n=======\ndef target(x):\n    return x + 1\n>>>>>>> REPLACE\n"
        var applier = EditApplier(files: ["big.py": long])
        for b in EditBlocks.parse(answer).blocks { #expect(applier.apply(b) == .applied) }
        #expect(applier.files["big.py"]?.hasSuffix("def target(x):\n    return x + 1\n") == true)
        #expect(answer.utf8.count * 100 < long.utf8.count)
    }
}
