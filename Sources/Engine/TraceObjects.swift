import Foundation

/// A copy of every file a TRACE.json entry records, by its SHA-256 (`objects/<sha256>`), so that the files of every
/// attempt still resolve after a later round replaced them. The snapshot of the source never changes in a run and is
/// not copied.
public enum TraceObjects {
    public static func path(_ sha256: String) -> String { "objects/\(sha256)" }

    static func keep(_ records: [FileRecord], in folder: RunFolder) {
        for record in records where !record.path.hasPrefix("source/") && !record.path.hasPrefix("objects/") {
            let object = path(record.sha256)
            guard !folder.fileExists(object), let data = try? folder.read(record.path), SHA256.hex(data) == record.sha256 else { continue }
            _ = try? folder.write(object, data)
        }
    }

    /// The first entry one of whose files resolves neither to the file as it is nor to its copy here.
    static func problem(in entries: [TraceEntry], folder: RunFolder) -> TraceProblem? {
        // Every attempt's files, also those a later round replaced: the file as it is, or its copy in objects/. Runs from
        // before objects/ was kept have none and are checked as before.
        guard folder.fileExists("objects") else { return nil }
        var current: [String: String?] = [:]
        for (i, entry) in entries.enumerated() {
            for record in entry.inputs + entry.outputs {
                let now = current[record.path] ?? folder.record(record.path)?.sha256
                current[record.path] = .some(now)
                if now == record.sha256 { continue }
                let object = path(record.sha256)
                guard folder.record(object)?.sha256 == record.sha256 else {
                    return TraceProblem(index: i + 1, entryID: entry.id, reason: "\(record.path) as this entry recorded it (SHA-256 \(record.sha256.prefix(12))…) is neither the file now nor \(object)")
                }
            }
        }
        return nil
    }
}
