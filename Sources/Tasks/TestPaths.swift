import Engine
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where model-written tests may go: new files whose paths match the project's test patterns
/// (`projects.<name>.test.patterns`, else `defaults`). A test file at the path of a source or implementation file
/// would replace that code in the tree the tests run on and in the result (a "test" `calc.py` with a backdoor landed
/// on the branch while the implementation artifact showed the clean code).
public enum TestPaths {
    /// The usual test file names of the languages the pipeline builds.
    public static let defaults = [
        "test_*.py", "*_test.py", "conftest.py", "tests/**", "test/**", "spec/**", "__tests__/**",
        "*_test.go", "*.test.js", "*.spec.js", "*.test.ts", "*.spec.ts", "*.test.mjs", "*Test.java", "*Tests.java",
        "*_test.rs", "*_test.cpp", "*_test.cc", "*_test.c", "*_spec.rb",
    ]

    /// Whether `path` matches one of `patterns`: a pattern without `/` matches a file name in any folder; one with `/`
    /// matches the path from any folder down, `**` standing for any number of folders, `*` and `?` within a name.
    public static func matches(_ path: String, patterns: [String]) -> Bool {
        let components = path.split(separator: "/").map(String.init)
        for pattern in patterns {
            let parts = pattern.split(separator: "/").map(String.init)
            if parts.count == 1 {
                if let name = components.last, fnmatch(parts[0], name, FNM_PERIOD) == 0 { return true }
                continue
            }
            for start in components.indices where match(parts[...], components[start...]) { return true }
        }
        return false
    }

    static func match(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let first = pattern.first else { return path.isEmpty }
        if first == "**" {
            return (0...path.count).contains { match(pattern.dropFirst(), path.dropFirst($0)) }
        }
        guard let name = path.first, fnmatch(first, name, FNM_PERIOD) == 0 else { return false }
        return match(pattern.dropFirst(), path.dropFirst())
    }

    /// Refuses test files that would replace a file of the project's source or of the implementation, or that do not
    /// look like tests; the error says which and why, and nothing is written.
    public static func check(_ paths: [String], source: Set<String>, implementation: Set<String>, patterns: [String]) throws {
        for path in paths {
            if source.contains(path) || implementation.contains(path) {
                throw EngineError(
                    code: .invalidInput,
                    message: "the model's test answer writes '\(path)', which is a file of the \(source.contains(path) ? "project's source" : "implementation"): tests go to new files; nothing was written",
                    key: path)
            }
            if !matches(path, patterns: patterns) {
                throw EngineError(
                    code: .invalidInput,
                    message: "the model's test answer writes '\(path)', which is not a test file by the project's test patterns (\(patterns.prefix(6).joined(separator: ", "))…; projects.<name>.test.patterns): nothing was written",
                    key: path)
            }
        }
    }
}
