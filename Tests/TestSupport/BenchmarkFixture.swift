import Foundation

/// A small benchmark in Aider's polyglot layout (`<language>/exercises/practice/<exercise>/`), written for the tests
/// (not copied from Exercism): one exercise, `sum-two`, in each of the six languages, with instructions, a stub, hidden
/// tests, `.meta/config.json` and the reference solution under `.meta/`. `answers` are a scripted model's whole-file
/// implementations per language: wrong (`a - b`) and right (`a + b`).
public enum BenchmarkFixture {
    public struct Language: Sendable {
        public var name: String
        public var solution: String
        public var wrong: String
        public var right: String
    }

    public static let exercise = "sum-two"

    public static let languages: [Language] = [
        Language(name: "python", solution: "sum_two.py", wrong: "def sum_two(a, b):\n    return a - b\n", right: "def sum_two(a, b):\n    return a + b\n"),
        Language(name: "go", solution: "sum_two.go", wrong: "package sumtwo\n\nfunc SumTwo(a, b int) int {\n\treturn a - b\n}\n", right: "package sumtwo\n\nfunc SumTwo(a, b int) int {\n\treturn a + b\n}\n"),
        Language(name: "rust", solution: "src/lib.rs", wrong: "pub fn sum_two(a: i32, b: i32) -> i32 {\n    a - b\n}\n", right: "pub fn sum_two(a: i32, b: i32) -> i32 {\n    a + b\n}\n"),
        Language(name: "cpp", solution: "sum_two.cpp", wrong: "#include \"sum_two.h\"\n\nnamespace sum_two {\nint sum(int a, int b) { return a - b; }\n}\n", right: "#include \"sum_two.h\"\n\nnamespace sum_two {\nint sum(int a, int b) { return a + b; }\n}\n"),
        Language(name: "java", solution: "src/main/java/SumTwo.java", wrong: "class SumTwo {\n    static int sum(int a, int b) {\n        return a - b;\n    }\n}\n", right: "class SumTwo {\n    static int sum(int a, int b) {\n        return a + b;\n    }\n}\n"),
        Language(name: "javascript", solution: "sum-two.js", wrong: "export const sumTwo = (a, b) => a - b;\n", right: "export const sumTwo = (a, b) => a + b;\n"),
    ]

    /// Writes the benchmark under `root`.
    public static func write(to root: String) throws {
        for language in languages {
            let dir = "\(root)/\(language.name)/exercises/practice/\(exercise)"
            func put(_ path: String, _ text: String) throws {
                let file = dir + "/" + path
                try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try text.write(toFile: file, atomically: true, encoding: .utf8)
            }
            try put(".docs/instructions.md", "# Sum two\n\nReturn the sum of two integers (exercise sum-two in \(language.name)).\n")
            let (stub, tests, extra, example) = files(language.name)
            try put(language.solution, stub)
            for (path, text) in tests.merging(extra, uniquingKeysWith: { a, _ in a }) { try put(path, text) }
            try put(".meta/\(example)", language.right)
            let config = ["files": ["solution": [language.solution], "test": tests.keys.sorted(), "example": [".meta/\(example)"]]]
            try put(".meta/config.json", String(decoding: try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]), as: UTF8.self))
        }
    }

    /// (stub, test files, support files, the example's file name) of a language.
    static func files(_ language: String) -> (String, [String: String], [String: String], String) {
        switch language {
        case "python":
            return ("def sum_two(a, b):\n    pass\n",
                    ["sum_two_test.py": "import unittest\n\nfrom sum_two import sum_two\n\n\nclass SumTwoTest(unittest.TestCase):\n    def test_small(self):\n        self.assertEqual(sum_two(2, 3), 5)\n\n    def test_zero(self):\n        self.assertEqual(sum_two(0, 0), 0)\n"],
                    [:], "example.py")
        case "go":
            return ("package sumtwo\n\nfunc SumTwo(a, b int) int {\n\tpanic(\"Please implement the SumTwo function\")\n}\n",
                    ["sum_two_test.go": "package sumtwo\n\nimport \"testing\"\n\nfunc TestSumTwo(t *testing.T) {\n\tif got := SumTwo(2, 3); got != 5 {\n\t\tt.Fatalf(\"SumTwo(2, 3) = %d, want 5\", got)\n\t}\n}\n"],
                    ["go.mod": "module sumtwo\n\ngo 1.18\n"], "example.go")
        case "rust":
            return ("pub fn sum_two(a: i32, b: i32) -> i32 {\n    todo!(\"sum {a} and {b}\")\n}\n",
                    // The second test is #[ignore]d as Exercism's are: the harness runs it all the same.
                    ["tests/sum-two.rs": "use sum_two::sum_two;\n\n#[test]\nfn small() {\n    assert_eq!(sum_two(2, 3), 5);\n}\n\n#[test]\n#[ignore]\nfn negative() {\n    assert_eq!(sum_two(-2, -3), -5);\n}\n"],
                    ["Cargo.toml": "[package]\nedition = \"2021\"\nname = \"sum_two\"\nversion = \"1.0.0\"\n"], "example.rs")
        case "cpp":
            return ("#include \"sum_two.h\"\n\nnamespace sum_two {\n}\n",
                    ["sum_two_test.cpp": "#include \"sum_two.h\"\n#include \"test/catch.hpp\"\n\nTEST_CASE(\"sums\") {\n    REQUIRE(sum_two::sum(2, 3) == 5);\n}\n\n#if defined(EXERCISM_RUN_ALL_TESTS)\nTEST_CASE(\"negative\") {\n    REQUIRE(sum_two::sum(-2, -3) == -5);\n}\n#endif\n"],
                    ["sum_two.h": "#pragma once\n\nnamespace sum_two {\nint sum(int a, int b);\n}\n",
                     "test/tests-main.cpp": "#define CATCH_CONFIG_MAIN\n#include \"catch.hpp\"\n",
                     // The exercise's own copy of Catch2 is not sent (a run's parameters hold 512 KiB): the worker's is used.
                     "test/catch.hpp": "#error \"the benchmark's catch.hpp is replaced by Debian's catch2\"\n",
                     "CMakeLists.txt": "cmake_minimum_required(VERSION 3.5.1)\nget_filename_component(exercise ${CMAKE_CURRENT_SOURCE_DIR} NAME)\nproject(${exercise} CXX)\nstring(REPLACE \"-\" \"_\" file ${exercise})\nadd_executable(${exercise} ${file}_test.cpp ${file}.cpp test/tests-main.cpp)\nset_target_properties(${exercise} PROPERTIES CXX_STANDARD 17)\nif(${EXERCISM_RUN_ALL_TESTS})\n  target_compile_definitions(${exercise} PRIVATE EXERCISM_RUN_ALL_TESTS)\nendif()\nadd_custom_target(test_${exercise} ALL DEPENDS ${exercise} COMMAND ${exercise})\n"],
                    "example.cpp")
        case "java":
            return ("class SumTwo {\n    static int sum(int a, int b) {\n        throw new UnsupportedOperationException(\"Delete this statement and write your own implementation.\");\n    }\n}\n",
                    ["src/test/java/SumTwoTest.java": "import org.junit.jupiter.api.Disabled;\nimport org.junit.jupiter.api.Test;\n\nimport static org.assertj.core.api.Assertions.assertThat;\n\npublic class SumTwoTest {\n    @Test\n    public void small() {\n        assertThat(SumTwo.sum(2, 3)).isEqualTo(5);\n    }\n\n    @Disabled(\"Remove to run test\")\n    @Test\n    public void negative() {\n        assertThat(SumTwo.sum(-2, -3)).isEqualTo(-5);\n    }\n}\n"],
                    ["build.gradle": "plugins {\n    id \"java\"\n}\n"], "SumTwo.java")
        default:
            return ("export const sumTwo = (a, b) => {\n  throw new Error('Remove this statement and implement this function');\n};\n",
                    ["sum-two.spec.js": "import { sumTwo } from './sum-two';\n\ndescribe('sumTwo', () => {\n  test('small', () => {\n    expect(sumTwo(2, 3)).toEqual(5);\n  });\n\n  xtest('zero', () => {\n    expect(sumTwo(0, 0)).toEqual(0);\n  });\n});\n"],
                    ["package.json": "{\"name\": \"sum-two\", \"private\": true}\n"], "proof.ci.js")
        }
    }
}
