import Foundation
import JSON
import Testing

@Suite("JSON timestamps")
struct JSONCodingTests {
    /// A timestamp read and written again is the same text (it used to lose a millisecond half the time,
    /// so TRACE.json drifted on every restart).
    @Test func millisecondTimestampsSurviveReadAndWrite() throws {
        for ms in 0..<1000 {
            let text = "2026-11-27T08:58:01." + String(format: "%03d", ms) + "Z"
            let date = try #require(JSONCoding.parseTimestamp(text))
            #expect(JSONCoding.formatTimestamp(date) == text)
        }
    }

    @Test func prefectMicrosecondsAndOffsetsAreRounded() throws {
        #expect(JSONCoding.parseTimestamp("2026-11-27T06:32:02.785254Z").map(JSONCoding.formatTimestamp) == "2026-11-27T06:32:02.785Z")
        #expect(JSONCoding.parseTimestamp("2026-11-27T06:32:02+00:00").map(JSONCoding.formatTimestamp) == "2026-11-27T06:32:02.000Z")
        #expect(JSONCoding.formatTimestamp(Date(timeIntervalSince1970: 1.9996)) == "1970-01-01T00:00:02.000Z")
        #expect(JSONCoding.formatTimestamp(Date(timeIntervalSince1970: -0.25)) == "1969-12-31T23:59:59.750Z")
    }
}
