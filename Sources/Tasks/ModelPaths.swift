import Engine
import Foundation

/// Paths a model may not write or delete, whatever the stage: git's own folder in any spelling a file system may
/// fold to `.git` (letter case, NTFS short names and trailing dots or spaces, HFS+'s ignored code points), and files
/// that git, a shell or an editor obeys or runs when a person opens the result (a model-written `.git/config` with
/// `core.fsmonitor` runs at the next `git status`). Each refusal names the reason.
public enum ModelPaths {
    /// Names refused in any folder, with why.
    static let deniedNames: [String: String] = [
        ".gitattributes": "git applies its filters and attributes to everyone who checks the result out",
        ".gitmodules": "git fetches the submodules it names",
        ".envrc": "direnv runs it when a person enters the folder",
    ]
    /// Paths (lowercased, from the tree's top) refused with why; a trailing "/" refuses everything below.
    static let deniedPaths: [(String, String)] = [
        (".vscode/tasks.json", "the editor runs its tasks"),
        (".github/workflows/", "CI runs it with the repository's secrets"),
    ]

    /// Throws when `path` is unsafe (RunFolder.checkRelative) or is one the model may not touch.
    public static func check(_ path: String, stage: String) throws {
        try RunFolder.checkRelative(path)
        if let reason = refusal(path) {
            throw EngineError(code: .unsafePath, message: "the model's \(stage) answer may not write or delete '\(path)': \(reason); nothing was written", key: path)
        }
    }

    /// Why `path` is refused, or nil.
    public static func refusal(_ path: String) -> String? {
        let components = RunFolder.components(path, omittingEmpty: true)
        for component in components {
            let folded = fold(component)
            if folded == ".git" || isShortGitName(folded) { return "it is git's own folder (\(component)), which runs commands from its config and hooks" }
            if let reason = deniedNames[folded] { return reason }
        }
        let lowered = components.map(fold).joined(separator: "/")
        for (denied, reason) in deniedPaths where denied.hasSuffix("/") ? lowered.hasPrefix(denied) : lowered == denied { return reason }
        return nil
    }

    /// A name as case-insensitive and forgiving file systems see it: lowercased, without the code points HFS+ ignores,
    /// without an NTFS stream suffix (`name:stream`) and trailing dots and spaces.
    static func fold(_ name: String) -> String {
        let ignored: Set<UInt32> = Set([0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0xFEFF]).union(0x206A...0x206F)
        var scalars = String.UnicodeScalarView(name.lowercased().unicodeScalars.filter { !ignored.contains($0.value) })
        if let colon = scalars.firstIndex(of: ":") { scalars = String.UnicodeScalarView(scalars[..<colon]) }
        var folded = String(scalars)
        while let last = folded.last, last == "." || last == " " { folded.removeLast() }
        return folded
    }

    /// NTFS's 8.3 short names for `.git`: `git~1`, `git~2`, ….
    static func isShortGitName(_ folded: String) -> Bool {
        guard folded.hasPrefix("git~") else { return false }
        let digits = folded.dropFirst(4)
        return !digits.isEmpty && digits.allSatisfy(\.isNumber)
    }
}
