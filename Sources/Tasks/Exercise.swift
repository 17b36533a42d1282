import Engine
import Foundation
import JSON

/// One benchmark exercise as a build gets it (`autonomy eval`): Aider's polyglot benchmark layout,
/// `<language>/exercises/practice/<name>/` with `.docs/instructions.md`, the stub files, the test files and
/// `.meta/config.json`. It travels whole in the run's `exercise` parameter, so any worker of the pool can run it
/// without a checkout of the benchmark: the instructions become the spec, every other file the source, the test files
/// hidden acceptance tests (withheld from every prompt, restored before every test run), and the language's
/// `Toolchain` the test command.
public struct Exercise: Sendable, Hashable {
    public var language: String
    public var name: String
    /// The spec: introduction, instructions and their append, then what to edit (as Aider's benchmark words it).
    public var instructions: String
    /// Every file of the exercise but `.meta/` and `.docs/`: stubs, tests, build files (path → text).
    public var files: [String: String]
    /// The test files (`.meta/config.json` → `files.test`): hidden acceptance tests.
    public var tests: [String]
    /// The files to edit (`files.solution`).
    public var solution: [String]
    /// Implement attempts: the first try plus `tries - 1` fix rounds with the test output.
    public var tries: Int
    /// `--gold`: the reference solution (`files.example`) at the solution's paths; the `gold` provider answers with it.
    public var reference: [String: String]?

    public static let maxFileBytes = 2 << 20
    public static let maxTotalBytes = 8 << 20
    public static let maxTries = 10
    public static let namePattern = #"^[a-z0-9][a-z0-9_-]{0,99}$"#

    public init(language: String, name: String, instructions: String, files: [String: String], tests: [String], solution: [String], tries: Int = 2, reference: [String: String]? = nil) {
        self.language = language
        self.name = name
        self.instructions = instructions
        self.files = files
        self.tests = tests
        self.solution = solution
        self.tries = tries
        self.reference = reference
    }

    /// The files no prompt shows: the tests and the language's support files (C++'s Catch2 under `test/`).
    public var hidden: [String] { tests + (Toolchain.defaults[language]?.hidden ?? []) }

    /// The project a build of it is: no spec folder or source (they come as files), the tests hidden, no model-written
    /// tests, the language's command, limits and folders.
    public func project(_ toolchain: Toolchain) -> Settings.Project {
        var project = Settings.Project(name: name, spec: nil)
        project.testCommand = toolchain.command
        project.testTimeout = toolchain.timeout
        project.hiddenTests = hidden
        project.modelTests = false
        project.sandboxPaths = toolchain.paths
        project.memoryMB = toolchain.memoryMB
        project.processes = toolchain.processes
        return project
    }

    // MARK: - The parameter

    public var json: JSONValue {
        [
            "language": .string(language), "name": .string(name), "instructions": .string(instructions),
            "files": .object(files.mapValues { .string($0) }), "tests": .array(tests.map { .string($0) }),
            "solution": .array(solution.map { .string($0) }), "tries": .int(tries),
            "reference": reference.map { .object($0.mapValues { .string($0) }) } ?? .null,
        ]
    }

    /// What TRACE.json records of it: names and hashes, not the texts (they are in `inputs/` and `source/`).
    public var summary: JSONValue {
        [
            "language": .string(language), "name": .string(name), "tries": .int(tries),
            "files": .object(files.mapValues { .string(SHA256.hex(Data($0.utf8))) }), "tests": .array(tests.map { .string($0) }),
            "solution": .array(solution.map { .string($0) }), "reference": .bool(reference != nil),
        ]
    }

    /// Reads the parameter, refusing anything a build could not safely use: an unknown language, a path that is
    /// not a plain relative path (or one no build may write), sizes past the spec's limits.
    public init(_ value: JSONValue) throws {
        func fail(_ why: String) -> EngineError {
            EngineError(code: .invalidInput, message: "parameter 'exercise' \(why); it is made by `autonomy eval` from a benchmark folder", key: "exercise")
        }
        guard let object = value.objectValue else { throw fail("must be an object or null") }
        let known: Set = ["language", "name", "instructions", "files", "tests", "solution", "tries", "reference"]
        if let unknown = object.keys.first(where: { !known.contains($0) }) { throw fail("has an unknown key '\(unknown)'") }
        guard let language = object["language"]?.stringValue, Toolchain.languages.contains(language) else {
            throw fail("needs a language: one of \(Toolchain.languages.joined(separator: ", "))")
        }
        guard let name = object["name"]?.stringValue, name.range(of: Self.namePattern, options: .regularExpression) != nil else {
            throw fail("needs a name of lowercase letters, digits, - and _")
        }
        guard let instructions = object["instructions"]?.stringValue, !instructions.isEmpty else { throw fail("needs the instructions") }
        func texts(_ key: String) throws -> [String: String]? {
            guard let value = object[key], !value.isNull else { return nil }
            guard let map = value.objectValue else { throw fail("'\(key)' must map paths to texts") }
            var result: [String: String] = [:]
            var total = 0
            for (path, text) in map {
                guard let text = text.stringValue else { throw fail("'\(key)' must map paths to texts (\(path))") }
                try Self.checkPath(path, fail: fail)
                total += text.utf8.count
                guard text.utf8.count <= Self.maxFileBytes, total <= Self.maxTotalBytes else {
                    throw fail("is too large at \(path) (files up to \(Self.maxFileBytes >> 20) MiB, \(Self.maxTotalBytes >> 20) MiB in all)")
                }
                result[path] = text
            }
            return result
        }
        func paths(_ key: String) throws -> [String] {
            guard let list = object[key]?.arrayValue else { throw fail("needs '\(key)': a list of paths") }
            return try list.map {
                guard let path = $0.stringValue else { throw fail("'\(key)' must list paths") }
                try Self.checkPath(path, fail: fail)
                return path
            }
        }
        guard let files = try texts("files"), !files.isEmpty else { throw fail("needs its files") }
        let tests = try paths("tests")
        guard !tests.isEmpty, tests.allSatisfy({ files[$0] != nil }) else { throw fail("must name its test files, each one of its files") }
        let tries = object["tries"]?.intValue ?? 2
        guard (1...Self.maxTries).contains(tries) else { throw fail("'tries' must be 1 to \(Self.maxTries)") }
        self.init(language: language, name: name, instructions: instructions, files: files, tests: tests, solution: try paths("solution"), tries: tries, reference: try texts("reference"))
    }

    static func checkPath(_ path: String, fail: (String) -> EngineError) throws {
        do {
            try RunFolder.checkRelative(path)
        } catch {
            throw fail("holds an unsafe path: \(error)")
        }
        if let why = ModelPaths.refusal(path) { throw fail("holds \(path), which no build may write: \(why)") }
    }

    // MARK: - A benchmark folder

    /// The exercises of `root` (a checkout of `Aider-AI/polyglot-benchmark`, or a folder of the same layout),
    /// per language, sorted by name.
    public static func list(root: String, languages: [String]? = nil) throws -> [(language: String, name: String, path: String)] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw EngineError(code: .missingFile, message: "\(root) is not a folder: give the path of a checkout of github.com/Aider-AI/polyglot-benchmark (or a folder with its layout, <language>/exercises/practice/<exercise>/)", file: root)
        }
        var found: [(String, String, String)] = []
        let wanted = languages ?? Toolchain.languages
        for language in wanted {
            let practice = "\(root)/\(language)/exercises/practice"
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: practice)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            for name in names where FileManager.default.fileExists(atPath: "\(practice)/\(name)/.meta/config.json") {
                found.append((language, name, "\(practice)/\(name)"))
            }
        }
        guard !found.isEmpty else {
            throw EngineError(code: .missingFile, message: "no exercises under \(root) (looked for \(wanted.map { "\($0)/exercises/practice/*/.meta/config.json" }.joined(separator: ", ")))", file: root)
        }
        return found
    }

    /// One exercise folder: `.meta/config.json` names the solution, test and example files; `.docs/` holds the
    /// instructions. Java tests lose their `@Disabled` lines and JavaScript's `xtest` becomes `test`, as Aider's
    /// harness does, so that every test runs. Binary files (the Gradle wrapper) are left out.
    public static func load(folder: String, language: String, tries: Int, gold: Bool) throws -> Exercise {
        let name = (folder as NSString).lastPathComponent
        func read(_ relative: String) -> String? {
            guard let data = try? FileTree.readRegular(root: folder, relative: relative, limit: maxFileBytes) else { return nil }
            return String(data: data, encoding: .utf8)
        }
        guard let configText = read(".meta/config.json"), let config = try? JSONValue.parse(configText), let listed = config["files"] else {
            throw EngineError(code: .invalidInput, message: "\(folder)/.meta/config.json is missing or not JSON: every exercise names its files there", file: folder + "/.meta/config.json")
        }
        func list(_ key: String) -> [String] { listed[key]?.arrayValue?.compactMap(\.stringValue) ?? [] }
        let tests = list("test"), solution = list("solution"), example = list("example")
        guard let instructionsText = read(".docs/instructions.md") else {
            throw EngineError(code: .invalidInput, message: "\(folder)/.docs/instructions.md is missing", file: folder)
        }
        var files: [String: String] = [:]
        let skipped: Set = [".meta", ".docs", ".exercism", "gradle", "node_modules", "build", "target"]
        for entry in FileTree.entries(folder, skipFolder: { skipped.contains(($0 as NSString).lastPathComponent) || ($0 as NSString).lastPathComponent.hasPrefix(".") }) {
            guard case .file = entry.kind, !["gradlew", "gradlew.bat"].contains(entry.path), !(Toolchain.defaults[language]?.provided.contains(entry.path) ?? false),
                var text = read(entry.path), !text.contains("\u{0}")
            else { continue }
            if tests.contains(entry.path) {
                if language == "java" { text = text.replacingOccurrences(of: #"(?m)^[ \t]*@Disabled\([^)]*\)[ \t]*\n"#, with: "", options: .regularExpression) }
                if language == "javascript" { text = text.replacingOccurrences(of: #"\bxtest\("#, with: "test(", options: .regularExpression) }
            }
            files[entry.path] = text
        }
        var reference: [String: String]?
        if gold {
            var answer: [String: String] = [:]
            for path in example {
                guard let text = read(path) else { throw EngineError(code: .invalidInput, message: "\(folder)/\(path) (the example solution) is missing", file: folder) }
                answer[referenceTarget(path, solution: solution, examples: example)] = text
            }
            reference = answer
        }
        let intro = read(".docs/introduction.md").map { $0 + "\n\n" } ?? ""
        let append = read(".docs/instructions.append.md").map { "\n\n" + $0 } ?? ""
        let instructions = "# \(name) (\(language))\n\n" + intro + instructionsText + append + """


            ## What to change

            Use the instructions above to modify the supplied files: \(solution.map { "`\($0)`" }.joined(separator: ", ")). Don't change the names of existing functions or classes, as they may be referenced from other code like unit tests. Only use standard libraries; don't add packages or dependencies. The tests are hidden: they run as they are.

            """
        return Exercise(language: language, name: name, instructions: instructions, files: files, tests: tests, solution: solution, tries: tries, reference: reference)
    }

    /// Where an example file goes: the solution file of the same name (Java's `.meta/src/reference/java/X.java`),
    /// else the only one of the same extension when no other example has it (`.meta/example.cpp` → `bank_account.cpp`),
    /// else a new file of its own name next to the solution (Java's helper class `Frame.java`).
    public static func referenceTarget(_ example: String, solution: [String], examples: [String]) -> String {
        let base = (example as NSString).lastPathComponent, ext = (example as NSString).pathExtension
        if let same = solution.first(where: { ($0 as NSString).lastPathComponent == base }) { return same }
        let sameExtension = solution.filter { ($0 as NSString).pathExtension == ext }
        if sameExtension.count == 1, examples.filter({ ($0 as NSString).pathExtension == ext }).count == 1 { return sameExtension[0] }
        let folder = solution.first.map { ($0 as NSString).deletingLastPathComponent } ?? ""
        return folder.isEmpty ? base : folder + "/" + base
    }
}

/// How each benchmark language's tests run in the sandbox: one table, documented in the README ("Benchmark").
/// Everything comes from Debian's packages (and the machine's rustup toolchain for Rust); nothing is downloaded
/// while a test runs, and every cache lives inside the test's scratch copy.
public struct Toolchain: Sendable {
    public var language: String
    /// Run by `/bin/sh -c` in the scratch copy; `$EXERCISE` is the exercise's name.
    public var command: String
    public var timeout: Duration
    public var memoryMB: Int
    /// The sandbox's process and thread limit (nil: `test.processes`).
    public var processes: Int? = nil
    /// Folders outside /usr the sandbox binds read-only.
    public var paths: [String]
    public var environment: [String: String]
    /// Support files withheld from prompts like the tests (globs).
    public var hidden: [String]
    /// Files that must exist on the worker (the tools), each with the package that brings it.
    public var requires: [(path: String, package: String)]
    /// Why this language cannot run on any worker here, whatever is installed.
    public var never: String? = nil
    /// Files the exercise does not send because the worker has them: C++'s 650 KB Catch2 v2 header (a run's parameters
    /// hold at most 512 KiB), copied from Debian's catch2 by the command.
    public var provided: [String] = []

    public static let languages = ["cpp", "go", "java", "javascript", "python", "rust"]

    static let javaClassPath = "/usr/share/java/junit-platform-console-standalone.jar:/usr/share/java/assertj-core.jar"

    public static let defaults: [String: Toolchain] = {
        // The JDK reads its security settings through a link into /etc/java-<n>-openjdk.
        let javaEtc = ((try? FileManager.default.contentsOfDirectory(atPath: "/etc")) ?? []).filter { $0.hasPrefix("java-") }.sorted().map { "/etc/" + $0 }
        return [
            "python": Toolchain(
                language: "python", command: "python3 -m pytest -v -p no:cacheprovider", timeout: .seconds(180), memoryMB: 2048, paths: [], environment: [:], hidden: [],
                requires: [("/usr/bin/python3", "python3"), ("/usr/lib/python3/dist-packages/pytest", "python3-pytest")]),
            "go": Toolchain(
                language: "go", command: #"GOCACHE="$PWD/.cache/go-build" GOPATH="$PWD/.cache/gopath" go test ./..."#, timeout: .seconds(300), memoryMB: 8192, paths: [],
                environment: ["GOPROXY": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOTELEMETRY": "off"], hidden: [],
                requires: [("/usr/bin/go", "golang-go")]),
            // Debian's cargo and rustc: the sandbox runs as nobody, who cannot enter a rustup toolchain under /root.
            "rust": Toolchain(
                language: "rust", command: #"CARGO_HOME="$PWD/.cache/cargo" CARGO_TARGET_DIR="$PWD/target" cargo test --offline -- --include-ignored"#,
                timeout: .seconds(300), memoryMB: 8192, paths: [], environment: [:], hidden: [],
                requires: [("/usr/bin/cargo", "cargo"), ("/usr/bin/rustc", "rustc")]),
            "cpp": Toolchain(
                language: "cpp",
                command: #"d="$TMPDIR/$EXERCISE" && mkdir -p "$d" && cp -R . "$d" && { [ ! -d "$d/test" ] || [ -f "$d/test/catch.hpp" ] || cp /usr/include/catch2/catch.hpp "$d/test/"; } && cmake -S "$d" -B "$d/build" -DEXERCISM_RUN_ALL_TESTS=1 >/dev/null && cmake --build "$d/build""#,
                // bank-account starts 1,000 threads at once: their stacks need the address space and the process limit.
                timeout: .seconds(300), memoryMB: 12288, processes: 2048, paths: [], environment: [:], hidden: ["test/**"],
                requires: [("/usr/bin/cmake", "cmake"), ("/usr/bin/g++", "g++"), ("/usr/bin/make", "make"), ("/usr/include/catch2/catch.hpp", "catch2")], provided: ["test/catch.hpp"]),
            "java": Toolchain(
                language: "java",
                command: #"rm -rf .classes && mkdir -p .classes && javac -nowarn -encoding UTF-8 -d .classes -cp \#(javaClassPath) $(find src -name '*.java') && java -jar /usr/share/java/junit-platform-console-standalone.jar --class-path .classes:/usr/share/java/assertj-core.jar --scan-class-path --disable-banner --disable-ansi-colors --details=tree"#,
                timeout: .seconds(300), memoryMB: 8192, paths: javaEtc, environment: ["JAVA_TOOL_OPTIONS": "-Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1"], hidden: [],
                requires: [("/usr/bin/javac", "default-jdk-headless"), ("/usr/share/java/junit-platform-console-standalone.jar", "junit5"), ("/usr/share/java/assertj-core.jar", "libassertj-core-java")]),
            "javascript": Toolchain(
                language: "javascript", command: "npx jest", timeout: .seconds(300), memoryMB: 4096, paths: [], environment: [:], hidden: [], requires: [],
                never: "the JavaScript exercises' tests run under jest, which Debian 12 does not package and npm's registry cannot be reached from here"),
        ]
    }()

    /// Why `exercise` cannot run on this worker (a missing tool, a crate to download), or nil when it can.
    public static func unavailable(_ exercise: Exercise) -> String? {
        guard let toolchain = defaults[exercise.language] else { return "no toolchain for \(exercise.language)" }
        if let never = toolchain.never { return never }
        let missing = toolchain.requires.filter { !FileManager.default.fileExists(atPath: $0.path) }
        if !missing.isEmpty {
            return "\(exercise.language) needs \(missing.map { "\($0.path) (\($0.package))" }.joined(separator: ", ")), which this worker does not have; install it (scripts/test and scripts/eval-benchmark do)"
        }
        if exercise.language == "rust", let manifest = exercise.files["Cargo.toml"], let crates = cargoDependencies(manifest), !crates.isEmpty {
            return "it needs crates from crates.io (\(crates.joined(separator: ", "))), which cannot be downloaded here (tests run offline)"
        }
        if exercise.language == "java", let gradle = exercise.files["build.gradle"], let artifacts = mavenDependencies(gradle), !artifacts.isEmpty {
            return "it needs \(artifacts.joined(separator: ", ")) from Maven Central, which cannot be downloaded here (tests compile against Debian's JUnit 5 and AssertJ only)"
        }
        if exercise.language == "cpp", exercise.files["CMakeLists.txt"]?.contains("find_package(Boost") == true, !FileManager.default.fileExists(atPath: "/usr/include/boost/date_time.hpp") {
            return "it needs Boost's date_time library, which this worker does not have; install libboost-date-time-dev (scripts/eval-benchmark does)"
        }
        return nil
    }

    /// The main code's Maven artifacts of a build.gradle (`implementation "group:name:version"`; test libraries are
    /// the harness's own).
    static func mavenDependencies(_ gradle: String) -> [String]? {
        gradle.split(separator: "\n").compactMap { raw in
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("implementation "), let open = line.firstIndex(where: { $0 == "\"" || $0 == "'" }) else { return nil }
            let coordinates = line[line.index(after: open)...].prefix { $0 != "\"" && $0 != "'" }.split(separator: ":")
            return coordinates.count >= 2 ? "\(coordinates[0]):\(coordinates[1])" : nil
        }
    }

    /// The crate names under `[dependencies]` (and dev-/build-dependencies) of a Cargo.toml.
    static func cargoDependencies(_ manifest: String) -> [String]? {
        var crates: [String] = []
        var inDependencies = false
        for raw in manifest.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                inDependencies = line.hasSuffix("dependencies]")
                continue
            }
            if inDependencies, let eq = line.firstIndex(of: "="), !line.hasPrefix("#") {
                crates.append(line[..<eq].trimmingCharacters(in: .whitespaces))
            }
        }
        return crates
    }
}
