import Foundation

public enum FilePaths {
    /// `path` made absolute against `base` (when relative) and standardized (`.` and `..` resolved).
    public static func absolute(_ path: String, relativeTo base: String) -> String {
        let full = path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
        return (full as NSString).standardizingPath
    }
}
