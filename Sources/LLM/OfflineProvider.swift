import Core
import Foundation

/// A deterministic provider with no network and no key: the whole pipeline runs without an API key.
/// It builds the bundled example (`textstats`) the way a real model often does: its first design lists one
/// open question (the design gate), and its first implementation has one bug (ties in `top_words` are not
/// broken alphabetically) that the failing test's output lets it fix in the next round, so a build shows
/// `test-1` failing and `test-2` passing. Any other project it refuses: it cannot build it.
public struct OfflineProvider: LLMProvider {
    public let name = "offline"
    public let defaultModel = "offline-1"

    public init() {}

    public func complete(_ request: LLMRequest) async throws -> LLMResponse {
        let project = request.project ?? "project"
        guard project == "example" else {
            throw LLMError(code: .badRequest, provider: name, message: "the offline provider only builds the bundled example (project example), not '\(project)'. Set llm.provider (claude, openai, openai-compatible) and its API key to build your own project")
        }
        let text: String
        switch request.stage {
        case .design: text = design(project: project, feedback: request.hints["feedback"])
        case .implement:
            // The first implementation has a bug (whole files, the answer format older runs used); with the failing
            // tests in the prompt it is fixed with one search/replace block.
            let fixing = (request.hints["failures"] ?? "none") != "none"
            text = fixing ? OfflineExample.fixBlock : Self.filesJSON([("textstats.py", OfflineExample.firstImplementation)])
        case .test: text = Self.filesJSON([("test_textstats.py", OfflineExample.tests)])
        case .verify: text = verify(project: project, passed: request.hints["tests_passed"] == "true", summary: request.hints["test_summary"] ?? "")
        default: text = "offline provider: nothing to do for this request"
        }
        let usage = TokenUsage(inputTokens: max(1, request.prompt.utf8.count / 4), outputTokens: max(1, text.utf8.count / 4))
        return LLMResponse(text: text, model: request.model, usage: usage, requestID: "offline-" + String(request.promptSHA256.prefix(12)))
    }

    func design(project _: String, feedback: String?) -> String {
        let answered = feedback.map { !$0.isEmpty && $0 != "none" } ?? false
        var doc = """
            # Architecture: textstats

            ## Modules
            - `textstats.py`: one module, pure functions, no I/O at import time.

            ## Public interface
            \(OfflineExample.interface)

            ## Data flow
            Text in, numbers out: each function tokenises its input independently; nothing is cached.

            ## Error handling
            Functions accept any `str`; `top_words` raises `ValueError` for a negative `n`.

            ## Test plan
            `unittest` cases for the empty text, punctuation, case, apostrophes and ties, run with `python3 -m unittest`.

            """
        if answered, let feedback {
            doc += "## Decisions\n- \(feedback.replacingOccurrences(of: "\n", with: " "))\n\n## Open questions\n- none\n"
        } else {
            doc += "## Open questions\n- Should `top_words` count digit-only tokens (e.g. \"2024\") as words?\n"
        }
        return doc
    }

    func verify(project: String, passed: Bool, summary: String) -> String {
        """
        # Verification: \(project)

        | criterion | evidence | met |
        |---|---|---|
        | The interface in SPEC.md exists | implementation files | yes |
        | The acceptance tests pass | \(summary.isEmpty ? "tests/RESULTS.json" : summary) | \(passed ? "yes" : "no") |

        Verdict: \(passed ? "PASS" : "FAIL")
        """
    }

    static func filesJSON(_ files: [(String, String)]) -> String {
        let value = JSONFiles(files: files.map { .init(path: $0.0, content: $0.1) })
        let data = (try? JSONEncoder().encode(value)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

struct JSONFiles: Codable {
    struct File: Codable {
        var path: String
        var content: String
    }
    var files: [File]
}

/// The bundled example, as the offline provider "writes" it.
enum OfflineExample {
    static let interface = """
        - `word_count(text) -> int`
        - `line_count(text) -> int`
        - `char_count(text, include_spaces=True) -> int`
        - `top_words(text, n=3) -> list[tuple[str, int]]`
        """

    static let implementation = #"""
        """textstats: word, line and character statistics of a text."""
        import re
        from collections import Counter

        _WORD = re.compile(r"[A-Za-z0-9']+")


        def _words(text):
            return [w.lower() for w in _WORD.findall(text) if w.strip("'")]


        def word_count(text: str) -> int:
            return len(_words(text))


        def line_count(text: str) -> int:
            if not text:
                return 0
            return len(text.splitlines())


        def char_count(text: str, include_spaces: bool = True) -> int:
            if include_spaces:
                return len(text)
            return sum(1 for c in text if not c.isspace())


        def top_words(text: str, n: int = 3):
            if n < 0:
                raise ValueError("n must be >= 0")
            counts = Counter(_words(text))
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            return ranked[:n]
        """#

    /// What a model often writes first: right but for one detail (ties are left in counting order).
    /// The fix round's answer: the one line that differs, as a search/replace block, with a summary.
    static var fixBlock: String {
        let wrong = firstImplementation.split(separator: "\n", omittingEmptySubsequences: false).first { $0.contains("key=lambda item: -item[1]") } ?? ""
        let right = implementation.split(separator: "\n", omittingEmptySubsequences: false).first { $0.contains("key=lambda item: (-item[1], item[0])") } ?? ""
        return """
            Ties must be ordered alphabetically: sort by count, then by word.

            textstats.py
            <<<<<<< SEARCH
            \(wrong)
            =======
            \(right)
            >>>>>>> REPLACE

            ```json
            {"summary": "top_words orders ties alphabetically (sort key: count descending, then the word)"}
            ```
            """
    }

    static var firstImplementation: String {
        implementation.replacingOccurrences(of: "key=lambda item: (-item[1], item[0])", with: "key=lambda item: -item[1]")
    }

    static let tests = #"""
        import unittest

        import textstats


        class WordCountTest(unittest.TestCase):
            def test_empty(self):
                self.assertEqual(textstats.word_count(""), 0)

            def test_punctuation_and_case(self):
                self.assertEqual(textstats.word_count("Hello, hello! World."), 3)

            def test_apostrophes(self):
                self.assertEqual(textstats.word_count("don't stop"), 2)


        class LineCountTest(unittest.TestCase):
            def test_empty(self):
                self.assertEqual(textstats.line_count(""), 0)

            def test_final_newline_adds_none(self):
                self.assertEqual(textstats.line_count("a\nb\n"), 2)


        class CharCountTest(unittest.TestCase):
            def test_with_and_without_spaces(self):
                self.assertEqual(textstats.char_count("a b"), 3)
                self.assertEqual(textstats.char_count("a b", include_spaces=False), 2)


        class TopWordsTest(unittest.TestCase):
            def test_ties_alphabetical(self):
                self.assertEqual(textstats.top_words("b a b a c", 2), [("a", 2), ("b", 2)])

            def test_n_larger_than_distinct(self):
                self.assertEqual(textstats.top_words("x y", 5), [("x", 1), ("y", 1)])

            def test_mixed_case(self):
                self.assertEqual(textstats.top_words("The the THE cat", 1), [("the", 3)])

            def test_negative_n(self):
                with self.assertRaises(ValueError):
                    textstats.top_words("a", -1)


        if __name__ == "__main__":
            unittest.main()
        """#
}
