import Foundation

/// Durations as config files write them: `500ms`, `2s`, `1.5s`, `5m`, `1h`; a bare number means seconds.
public enum DurationParser {
    /// At most a year: longer is a typo, and would not fit the milliseconds a Duration is made from.
    public static let longest: Double = 365 * 24 * 3600

    /// What an error about a duration tells the person to write.
    public static let howToWrite = "write a number with ms, s, m or h (e.g. 30s), at most a year; a bare number means seconds"

    public static func parse(_ text: String) -> Duration? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        let (number, factor) = units.first { t.hasSuffix($0.0) }.map { (t.dropLast($0.0.count).trimmingCharacters(in: .whitespaces), $0.1) } ?? (t, 1)
        guard let value = Double(number), value >= 0, value * factor <= longest else { return nil }
        return .milliseconds(Int64((value * factor * 1000).rounded()))
    }

    /// `1h`, `5m`, `30s`, `1.5s`, `500ms`.
    public static func format(_ duration: Duration) -> String {
        let ms = Int64((Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15).rounded())
        if ms % 3_600_000 == 0 && ms > 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 && ms > 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        if ms < 1000 { return "\(ms)ms" }
        return "\(Double(ms) / 1000)s"
    }
}
