import Foundation

/// The project's JSON coders: sorted keys, ISO 8601 dates with fractional seconds (Prefect sends
/// microseconds, e.g. `2026-11-27T06:32:02.785254Z`; a timestamp without fraction is accepted too).
public enum JSONCoding {
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatTimestamp(date))
        }
        return encoder
    }

    public static var prettyEncoder: JSONEncoder {
        let encoder = Self.encoder
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return encoder
    }

    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseTimestamp(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "'\(text)' is not an ISO 8601 timestamp")
            }
            return date
        }
        return decoder
    }

    /// `2026-11-27T06:32:02.785Z` (UTC, milliseconds, rounded). Not ISO8601FormatStyle's fractional seconds:
    /// it truncates, and a parsed `.404` is a Double just under it, so every read-and-write of TRACE.json
    /// took a millisecond off half the timestamps (found by scripts/fuzz).
    public static func formatTimestamp(_ date: Date) -> String {
        let ms = (date.timeIntervalSince1970 * 1000).rounded()
        let seconds = (ms / 1000).rounded(.down)
        let fraction = String(Int(ms - seconds * 1000))
        let whole = Date(timeIntervalSince1970: seconds).formatted(Date.ISO8601FormatStyle())  // ends in Z
        return whole.dropLast() + "." + String(repeating: "0", count: 3 - fraction.count) + fraction + "Z"
    }

    public static func parseTimestamp(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        // Offsets like +00:00 and more than 3 fraction digits: normalise and retry.
        var t = text
        if t.hasSuffix("+00:00") { t = String(t.dropLast(6)) + "Z" }
        if let dot = t.firstIndex(of: "."), let z = t.lastIndex(of: "Z"), dot < z {
            let fraction = t[t.index(after: dot)..<z].prefix(3)
            t = String(t[..<dot]) + "." + fraction.padding(toLength: 3, withPad: "0", startingAt: 0) + "Z"
            return try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(t)
        }
        return try? Date.ISO8601FormatStyle().parse(t)
    }
}
