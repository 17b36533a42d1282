import Engine
import Foundation
import JSON
import Tasks
import Testing
import TestSupport

/// Benchmark exercises (`autonomy eval`): read from Aider's polyglot layout, carried whole in a run's parameters,
/// refused when a build could not safely use them, and run with their language's toolchain.
@Suite("Benchmark exercises")
struct ExerciseTests {
    func benchmark() throws -> TempDir {
        let dir = try TempDir()
        try BenchmarkFixture.write(to: dir.path)
        return dir
    }

    @Test func theLayoutIsReadAsAiderReadsIt() throws {
        let dir = try benchmark()
        let listed = try Exercise.list(root: dir.path)
        #expect(listed.map(\.language) == Toolchain.languages)
        #expect(Set(listed.map(\.name)) == [BenchmarkFixture.exercise])

        let java = try Exercise.load(folder: listed.first { $0.language == "java" }!.path, language: "java", tries: 2, gold: true)
        #expect(java.tests == ["src/test/java/SumTwoTest.java"])
        #expect(java.solution == ["src/main/java/SumTwo.java"])
        // Every test runs: Java's @Disabled lines go, as in Aider's harness.
        #expect(!java.files["src/test/java/SumTwoTest.java"]!.contains("@Disabled"))
        #expect(java.files["src/test/java/SumTwoTest.java"]!.contains("public void negative()"))
        // .meta/ and .docs/ are never part of the source; the reference lands on the solution's path.
        #expect(java.files.keys.allSatisfy { !$0.hasPrefix(".meta") && !$0.hasPrefix(".docs") })
        #expect(java.reference == ["src/main/java/SumTwo.java": BenchmarkFixture.languages.first { $0.name == "java" }!.right])
        #expect(java.instructions.contains("Return the sum of two integers"))
        #expect(java.instructions.contains("modify the supplied files: `src/main/java/SumTwo.java`"))

        let cpp = try Exercise.load(folder: listed.first { $0.language == "cpp" }!.path, language: "cpp", tries: 2, gold: false)
        #expect(cpp.reference == nil)
        #expect(cpp.files["test/catch.hpp"] == nil, "Catch2 comes from the worker (Debian's catch2): a run's parameters hold 512 KiB")
        #expect(cpp.files["test/tests-main.cpp"] != nil)
        #expect(cpp.hidden == ["sum_two_test.cpp", "test/**"])

        let js = try Exercise.load(folder: listed.first { $0.language == "javascript" }!.path, language: "javascript", tries: 1, gold: false)
        #expect(!js.files["sum-two.spec.js"]!.contains("xtest("))
    }

    @Test func theParameterRoundTripsAndTheTraceKeepsOnlyHashes() throws {
        let dir = try benchmark()
        let folder = try Exercise.list(root: dir.path, languages: ["python"])[0].path
        let exercise = try Exercise.load(folder: folder, language: "python", tries: 3, gold: true)
        #expect(try Exercise(try JSONValue.parse(exercise.json.jsonText())) == exercise)
        let summary = exercise.summary.jsonText()
        #expect(!summary.contains("def sum_two"))
        #expect(summary.contains(SHA256.hex(exercise.files["sum_two.py"]!)))
    }

    @Test(arguments: [
        (#"{"language": "cobol"}"#, "needs a language"),
        (#"{"language": "python", "name": "../x", "instructions": "i", "files": {"a.py": ""}, "tests": ["a.py"], "solution": []}"#, "needs a name"),
        (#"{"language": "python", "name": "x", "instructions": "i", "files": {"../a.py": ""}, "tests": ["../a.py"], "solution": []}"#, "unsafe path"),
        (#"{"language": "python", "name": "x", "instructions": "i", "files": {".git/hooks/pre-commit": "x", "t.py": ""}, "tests": ["t.py"], "solution": []}"#, "which no build may write"),
        (#"{"language": "python", "name": "x", "instructions": "i", "files": {"a.py": ""}, "tests": ["b.py"], "solution": []}"#, "must name its test files"),
        (#"{"language": "python", "name": "x", "instructions": "i", "files": {"a.py": ""}, "tests": ["a.py"], "solution": [], "tries": 0}"#, "'tries' must be 1 to 10"),
        (#"{"language": "python", "name": "x", "instructions": "i", "files": {"a.py": ""}, "tests": ["a.py"], "solution": [], "command": "rm -rf /"}"#, "unknown key 'command'"),
    ])
    func aParameterABuildCouldNotSafelyUseIsRefused(text: String, expected: String) throws {
        #expect {
            _ = try Exercise(try JSONValue.parse(text))
        } throws: { error in
            "\(error)".contains(expected) && "\(error)".contains("autonomy eval")
        }
    }

    @Test func whatCannotRunHereSaysWhy() throws {
        func exercise(_ language: String, files: [String: String] = ["t": ""]) -> Exercise {
            Exercise(language: language, name: "x", instructions: "i", files: files, tests: ["t"], solution: [])
        }
        #expect(Toolchain.unavailable(exercise("javascript"))?.contains("jest, which Debian 12 does not package") == true)
        let crates = Toolchain.unavailable(exercise("rust", files: ["t": "", "Cargo.toml": "[package]\nname = \"x\"\n\n[dependencies]\ntime = \"0.3\"\n\n[dev-dependencies]\nrand = \"0.8\"\n"]))
        #expect(crates == "it needs crates from crates.io (time, rand), which cannot be downloaded here (tests run offline)")
        #expect(Toolchain.unavailable(exercise("rust", files: ["t": "", "Cargo.toml": "[package]\nname = \"x\"\n"])) == nil || !FileManager.default.fileExists(atPath: "/usr/bin/cargo"))
        let gradle = "dependencies {\n    implementation \"io.reactivex.rxjava2:rxjava:2.2.12\"\n    testImplementation \"org.assertj:assertj-core:3.25.1\"\n}\n"
        #expect(Toolchain.unavailable(exercise("java", files: ["t": "", "build.gradle": gradle])) == "it needs io.reactivex.rxjava2:rxjava from Maven Central, which cannot be downloaded here (tests compile against Debian's JUnit 5 and AssertJ only)")
    }

    /// The reference files land where the build would write them: found by the gold eval of the real benchmark, where
    /// Java's bowling has a helper class `Frame.java` next to `BowlingGame.java` (it was written over the solution).
    @Test func referenceFilesLandOnTheSolutionsPaths() {
        let java = ["src/main/java/BowlingGame.java"], javaExamples = [".meta/src/reference/java/BowlingGame.java", ".meta/src/reference/java/Frame.java"]
        #expect(javaExamples.map { Exercise.referenceTarget($0, solution: java, examples: javaExamples) } == ["src/main/java/BowlingGame.java", "src/main/java/Frame.java"])
        let cpp = ["bank_account.cpp", "bank_account.h"], cppExamples = [".meta/example.cpp", ".meta/example.h"]
        #expect(cppExamples.map { Exercise.referenceTarget($0, solution: cpp, examples: cppExamples) } == cpp)
        #expect(Exercise.referenceTarget(".meta/example.rs", solution: ["src/lib.rs"], examples: [".meta/example.rs"]) == "src/lib.rs")
        #expect(Exercise.referenceTarget(".meta/example.h", solution: cpp, examples: [".meta/example.h"]) == "bank_account.h")
    }

    @Test func aMissingBenchmarkFolderSaysWhereToGetOne() throws {
        #expect {
            _ = try Exercise.list(root: "/nonexistent/polyglot")
        } throws: { error in
            "\(error)".contains("Aider-AI/polyglot-benchmark")
        }
    }
}
