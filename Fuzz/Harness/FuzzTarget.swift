import Engine
import Foundation
import JSON

/// One libFuzzer target: a decoder the program feeds with bytes from outside (a file a person wrote, an
/// answer from Prefect or a model), and the properties that must hold whatever the bytes are. A property
/// that fails aborts, which libFuzzer reports as a crash and saves the input for `scripts/fuzz --replay`.
struct FuzzTarget: Sendable {
    let name: String
    let summary: String
    let run: @Sendable (Data) -> Void
}

/// Every target; `AUTONOMY_FUZZ_TARGET` picks the one a process runs.
let fuzzTargets: [FuzzTarget] = ConfigTargets.all + ModelOutputTargets.all + ServerAnswerTargets.all

let selectedTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["AUTONOMY_FUZZ_TARGET"] ?? ""
    if let target = fuzzTargets.first(where: { $0.name == name }) { return target }
    if name == "list" {  // for scripts/fuzz
        FileHandle.standardOutput.write(Data(fuzzTargets.map { $0.name + "\n" }.joined().utf8))
        exit(0)
    }
    var text = name.isEmpty ? "set AUTONOMY_FUZZ_TARGET to one of:\n" : "unknown fuzz target '\(name)'; choose one of:\n"
    for target in fuzzTargets { text += "  \(target.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(target.summary)\n" }
    FileHandle.standardError.write(Data(text.utf8))
    exit(2)
}()

/// Picks the target before libFuzzer starts (it treats an exit during a run as a crash).
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    _ = selectedTarget
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = bytes.map { Data(bytes: $0, count: size) } ?? Data()
    selectedTarget.run(data)
    return 0
}

/// A property of the decoder that the input broke: abort with what and why.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        FileHandle.standardError.write(Data("property broken: \(message())\n".utf8))
        abort()
    }
}

/// A rejection must be the module's error, naming the file (and a line inside it when it has one),
/// with a message: that is what lets `autonomy check` print `file:line: key: how to fix it`.
func requireFileError(_ error: any Error, file: String, codes: Set<EngineError.Code> = [.invalidConfig], lines: Int? = nil) {
    guard let error = error as? EngineError else {
        return require(false, "rejected with \(type(of: error)) instead of an EngineError: \(error)")
    }
    require(codes.contains(error.code), "error code \(error.code) not in \(codes): \(error)")
    require(error.file == file, "error names '\(error.file ?? "no file")', not '\(file)': \(error)")
    require(!error.message.isEmpty, "error without a message: \(error)")
    if let line = error.line {
        require(line >= 1, "line \(line) is not a line: \(error)")
        if let lines { require(line <= lines, "line \(line) is past the end (\(lines) lines): \(error)") }
    }
}

/// A JSON value must survive being sent: encoding then decoding gives the same value (NaN, infinities
/// and numbers JSON cannot carry would become `null` or fail on the wire).
func requireJSONRoundTrip(_ value: JSONValue, _ what: String) {
    let text = value.jsonText()
    guard let back = try? JSONValue.parse(text) else { return require(false, "\(what): \(text) does not parse back") }
    require(back == value, "\(what): \(text) parses back as \(back.jsonText())")
}

/// A scratch folder for the decoders that read files, removed when the process exits.
enum Scratch {
    static let folder: String = {
        let path = NSTemporaryDirectory() + "autonomy-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: Scratch.folder) }
        return path
    }()

    /// An environment with no Prefect profile and no keys, so only the input decides.
    static var environment: [String: String] { ["HOME": folder, "PREFECT_HOME": folder + "/no-prefect-home"] }

    static func write(_ data: Data, as name: String) -> String {
        let path = folder + "/" + name
        require(FileManager.default.createFile(atPath: path, contents: data), "cannot write \(path)")
        return path
    }
}
