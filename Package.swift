// swift-tools-version:6.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The commit `autonomy --version` names: AUTONOMY_GIT_COMMIT, which the scripts set (scripts/lib.sh git_commit);
/// "unknown" without it. Not `Context.gitInformation`: SwiftPM caches the manifest's evaluation across commits, so an
/// incremental build would name an old commit; a changed environment variable makes it read the manifest again.
let gitCommit = Context.environment["AUTONOMY_GIT_COMMIT"].flatMap { $0.isEmpty ? nil : $0 } ?? "unknown"

let package = Package(
    name: "autonomy-engine",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "autonomy", targets: ["autonomy"])
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
    ],
    targets: [
        // The only C boundaries: libcurl (with non-variadic wrappers), libcrypto (SHA-256, HMAC) and a few Linux calls.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Linux calls Glibc does not import (prctl, posix_spawn's closefrom/chdir): header only.
        .systemLibrary(name: "CSystem"),
        // libseccomp: the test sandbox's system-call filter (bubblewrap --seccomp).
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        // The build's git commit for `autonomy --version` (a C string: Swift has no valued compile-time defines).
        .target(name: "CBuildInfo", cSettings: [.define("AUTONOMY_GIT_COMMIT", to: "\"\(gitCommit)\"")]),

        .target(name: "JSON", swiftSettings: swiftSettings),
        .target(
            name: "HTTP",
            dependencies: [
                "CCurl", "CSystem", "JSON", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "PrefectAPI",
            dependencies: ["HTTP", "JSON", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // Starting programs (posix_spawn, process groups, the process's own hardening): system calls only.
        .target(name: "Processes", dependencies: ["CSystem"], swiftSettings: swiftSettings),
        // The build's vocabulary: stage names, token usage and estimates, SHA-256 (libcrypto). Below Engine and LLM.
        .target(name: "Core", dependencies: ["CCrypto"], swiftSettings: swiftSettings),
        .target(
            name: "Engine",
            dependencies: ["Core", "CCrypto", "JSON", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // Reading config.yml, DECISION_GATES.yml and prefect.yaml (libyaml through Yams) into Engine's types.
        .target(name: "Config", dependencies: ["Engine", "Yams", "JSON"], swiftSettings: swiftSettings),
        .target(
            name: "LLM",
            dependencies: ["HTTP", "Core", "JSON", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(
            name: "Tasks",
            dependencies: ["Engine", "Processes", "LLM", "CSeccomp", "JSON", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(
            name: "AutonomyFlow",
            dependencies: ["Engine", "Config", "Tasks", "LLM", "JSON"],
            path: "flows",
            swiftSettings: swiftSettings),
        .target(
            name: "Worker",
            dependencies: [
                "PrefectAPI", "Engine", "Config", "LLM", "Tasks", "AutonomyFlow", "HTTP", "JSON", "CBuildInfo",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "autonomy",
            dependencies: [
                "Worker", "PrefectAPI", "Engine", "Config", "Processes", "LLM", "AutonomyFlow", "Tasks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                "JSON",
            ],
            swiftSettings: swiftSettings),

        .target(name: "TestSupport", dependencies: ["Engine", "Processes"], path: "Tests/TestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "CoreTests", dependencies: ["Core"], swiftSettings: swiftSettings),
        .testTarget(name: "ProcessesTests", dependencies: ["Processes", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "JSONTests", dependencies: ["JSON"], swiftSettings: swiftSettings),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", "JSON", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "PrefectAPITests", dependencies: ["PrefectAPI", "JSON"], swiftSettings: swiftSettings),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "JSON", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ConfigTests", dependencies: ["Config", "Engine", "JSON", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "LLMTests", dependencies: ["LLM", "Tasks", "HTTP", "Engine", "Config", "JSON", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "TasksTests", dependencies: ["Tasks", "Engine", "Processes", "CSystem", "LLM", "JSON", "TestSupport", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(
            name: "AutonomyFlowTests", dependencies: ["AutonomyFlow", "Engine", "Config", "JSON", "TestSupport"], path: "Tests/AutonomyFlowTests",
            swiftSettings: swiftSettings),
        .testTarget(
            name: "WorkerTests", dependencies: ["Worker", "PrefectAPI", "Engine", "Config", "JSON", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["PrefectAPI", "HTTP", "JSON", "Engine", "Config", "Worker", "AutonomyFlow", "Tasks", "LLM", "TestSupport"],
            swiftSettings: swiftSettings),
    ]
)

// The libFuzzer harness (scripts/fuzz). It is only in the manifest when AUTONOMY_FUZZ=1: it has no main of
// its own (libFuzzer's runtime supplies it), so an ordinary build must not try to link it.
if Context.environment["AUTONOMY_FUZZ"] == "1" {
    package.targets.append(.executableTarget(
        name: "autonomy-fuzz",
        dependencies: ["Engine", "Config", "JSON", "HTTP", "LLM", "Tasks", "AutonomyFlow", "PrefectAPI"],
        path: "Fuzz/Harness",
        swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]))
    package.products.append(.executable(name: "autonomy-fuzz", targets: ["autonomy-fuzz"]))
}
