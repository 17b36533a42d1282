import Engine
import Foundation
import JSON
import Tasks
import Testing
import TestSupport

/// The repository map: ctags outlines, files ranked for a request (named, in a traceback, edited, defining a name the
/// request uses, and their neighbours by PageRank), and the prompt part built within its budgets.
@Suite("Repository map")
struct RepoMapTests {
    static let files: [String: String] = [
        "pkg/table.py": "from pkg.cells import format_cell\n\n\nclass TableRenderer:\n    def render_rows(self, rows, width=80):\n        return [format_cell(c) for c in rows]\n\n\ndef parse_header_row(line):\n    return line.split('|')\n",
        "pkg/cells.py": "def format_cell(value):\n    return str(value)\n",
        "pkg/unrelated.py": "def other_thing():\n    return 1\n",
        "docs/notes.md": "# Notes\n\nNothing here.\n",
    ]

    func map() async throws -> (RepoMap, TempDir) {
        let dir = try TempDir()
        for (path, text) in Self.files {
            try FileManager.default.createDirectory(atPath: (dir.path + "/" + path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: dir.path + "/" + path, atomically: true, encoding: .utf8)
        }
        let (map, problem) = await RepoMap.load(root: dir.path, files: Self.files.keys.sorted())
        #expect(problem == nil)
        return (map, dir)
    }

    @Test func ctagsOutlinesEachFileWithLinesAndSignatures() async throws {
        let (map, _) = try await map()
        let outline = map.outline("pkg/table.py", lines: 10)
        #expect(outline == "pkg/table.py (10 lines)\n  4: class TableRenderer\n    5: member render_rows(self, rows, width=80)\n  9: function parse_header_row(line)\n", "\(outline)")
        // Documents have no definitions; imports are not definitions.
        #expect(map.tags["docs/notes.md"] == nil)
        #expect(map.tags["pkg/table.py"]?.contains { $0.name == "format_cell" } == false)
    }

    @Test func filesRankByWhatTheRequestNamesThenByTheReferenceGraph() async throws {
        let (map, _) = try await map()
        // A name the request uses: the file defining it first, then the file it uses (cells.py), then the rest.
        let byName = map.ranked(Self.files, focus: .init(text: "parse_header_row splits on the wrong character"))
        #expect(byName.map(\.path).prefix(2) == ["pkg/table.py", "pkg/cells.py"])
        #expect(byName.first?.reason == "defines parse_header_row")
        #expect(byName.first { $0.path == "pkg/cells.py" }!.score > byName.first { $0.path == "pkg/unrelated.py" }!.score)
        // A traceback from the sandbox's /build names the file whatever folder it ran in.
        let traceback = map.ranked(Self.files, focus: .init(text: "Traceback:\n  File \"/build/pkg/unrelated.py\", line 2, in other_thing\nAssertionError"))
        #expect(traceback.first?.path == "pkg/unrelated.py" && traceback.first?.reason == "traceback")
        // A path the task names, and files edited earlier.
        let named = map.ranked(Self.files, focus: .init(text: "Change pkg/cells.py so that None prints as ''.", edited: ["pkg/unrelated.py"]))
        #expect(named.prefix(2).map(\.reason) == ["named", "edited"])
    }

    @Test func thePromptPartShowsTheRelevantFilesWholeAndOutlinesTheRest() async throws {
        let (map, _) = try await map()
        // Room for one file in full: the one the request names; the others outlined, and the model told how to ask.
        let small = CodeContext.build(Self.files, map: map, focus: .init(text: "fix pkg/table.py"), budget: .init(fullTokens: 80, mapTokens: 500), requests: 8)
        #expect(small.full == ["pkg/table.py"])
        #expect(small.outlined.first == "pkg/cells.py")
        #expect(small.text.contains("Shown in full below (1): pkg/table.py."))
        #expect(small.text.contains("## Repository map\n\n```\npkg/cells.py (3 lines)\n  1: function format_cell(value)\n"))
        #expect(small.text.contains("up to 8 request(s)"))
        // Everything fits: everything in full, nothing to ask for.
        let all = CodeContext.build(Self.files, map: map, focus: .init(text: ""), budget: .init(fullTokens: 10_000, mapTokens: 500), requests: 8)
        #expect(all.full.count == 4)
        #expect(all.text.hasPrefix("The project has 4 text files. All of them are shown in full below."))
        // A map over its budget lists paths only, then says how many were left out.
        let tight = CodeContext.build(Self.files, map: map, focus: .init(text: "fix pkg/table.py"), budget: .init(fullTokens: 80, mapTokens: 10), requests: 0)
        #expect(tight.text.contains("more not even listed"))
        #expect(!tight.text.contains("\"read\""))
    }

    @Test func readAndSearchAnswers() {
        let request = CodeRequest(["read": ["pkg/table.py:4-5", "pkg/missing.py", "table.py"], "search": ["format_cell\\(", "(unclosed"]])!
        let (text, shown, note) = request.answer(Self.files, budget: 100_000)
        #expect(shown == ["pkg/table.py"])
        #expect(text.contains("### pkg/table.py (lines 4-5 of 11)\n\n```\nclass TableRenderer:\n    def render_rows(self, rows, width=80):\n```"))
        #expect(text.contains("### pkg/missing.py\n\nNo such file in the project."))
        #expect(text.contains("### table.py\n\nNo such file in the project; files with that name: pkg/table.py."))
        #expect(text.contains("### search `format_cell\\(`: 2 matches"))
        #expect(text.contains("pkg/cells.py:1: def format_cell(value):"))
        #expect(text.contains("pkg/table.py:6: "))
        #expect(text.contains("Not a regular expression this worker can use"))
        #expect(note.hasPrefix("read pkg/table.py:4-5 ("))
        // Past the budget a file is not shown, and the model is told to ask for less.
        let cut = CodeRequest(["read": ["pkg/table.py"]])!.answer(Self.files, budget: 150)
        #expect(cut.shown.isEmpty && cut.text.contains("does not fit in what is left of the prompt"))
    }
}
