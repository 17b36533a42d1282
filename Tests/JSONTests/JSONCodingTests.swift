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

    /// The calendar arithmetic against Foundation's ISO 8601 format from 1583 to 9999, before and after 1970.
    /// (Before 1583 Foundation's Gregorian calendar is Julian; ISO 8601, Python and Prefect count on in Gregorian.)
    @Test func formattingAgreesWithFoundation() throws {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        let first: Int64 = -12_212_553_600_000  // 1583-01-01, ms
        for _ in 0..<20_000 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let ms = first + Int64(seed >> 1) % (253_402_300_800_000 - first)
            let date = Date(timeIntervalSince1970: Double(ms) / 1000)
            let whole = Date(timeIntervalSince1970: (Double(ms) / 1000).rounded(.down)).formatted(Date.ISO8601FormatStyle())
            let fraction = String(format: "%03d", Int(((ms % 1000) + 1000) % 1000))
            let text = JSONCoding.formatTimestamp(date)
            #expect(text == whole.dropLast() + "." + fraction + "Z", "\(ms)")
            #expect(JSONCoding.parseTimestamp(text).map(JSONCoding.formatTimestamp) == text)
        }
    }

    @Test func offsetsLeapYearsAndSeparators() {
        let format = { (text: String) in JSONCoding.parseTimestamp(text).map(JSONCoding.formatTimestamp) }
        #expect(format("2026-11-27T08:32:02+02:00") == "2026-11-27T06:32:02.000Z")
        #expect(format("2026-11-27T05:02:02.5-0130") == "2026-11-27T06:32:02.500Z")
        #expect(format("2026-11-27T06:32:02+00") == "2026-11-27T06:32:02.000Z")
        #expect(format("2026-11-27 06:32:02.1234567z") == "2026-11-27T06:32:02.123Z")
        #expect(format("2026-01-01T00:30:00+01:00") == "2025-12-31T23:30:00.000Z")
        #expect(format("2024-02-29T12:00:00Z") == "2024-02-29T12:00:00.000Z")
        #expect(format("2000-02-29T12:00:00Z") == "2000-02-29T12:00:00.000Z")
        #expect(format("1969-12-31T23:59:59.750Z") == "1969-12-31T23:59:59.750Z")
        // Proleptic Gregorian, as Python's datetime counts: 0001-01-01 and 1000-01-01 are these seconds before 1970.
        #expect(JSONCoding.formatTimestamp(Date(timeIntervalSince1970: -62_135_596_800)) == "0001-01-01T00:00:00.000Z")
        #expect(JSONCoding.parseTimestamp("1000-01-01T00:00:00Z") == Date(timeIntervalSince1970: -30_610_224_000))
    }

    @Test func impossibleOrIncompleteTimestampsAreRejected() {
        for text in ["", "2026-11-27", "2026-11-27T06:32:02", "2026-02-30T00:00:00Z", "2100-02-29T00:00:00Z",
                     "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-11-27T24:00:00Z", "2026-11-27T06:60:00Z",
                     "2026-11-27T06:32:61Z", "2026-11-27T06:32:02.Z", "2026-11-27T06:32:02Zx", "2026-11-27T06:32:02+25:00",
                     "26-11-27T06:32:02Z", "2026-1-27T06:32:02Z", "２０２６-11-27T06:32:02Z", "2026-11-27T06:32:02+0"] {
            #expect(JSONCoding.parseTimestamp(text) == nil, "\(text)")
        }
    }
}
