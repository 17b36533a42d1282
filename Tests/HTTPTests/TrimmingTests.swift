import HTTP
import Testing

@Suite("Header whitespace")
struct TrimmingTests {
    /// What `trimmingCharacters(in: .whitespacesAndNewlines)` did for header names and values, without Foundation.
    @Test func trimsLeadingAndTrailingWhitespaceAndNewlines() {
        #expect(" application/json\r\n".trimmingWhitespace() == "application/json")
        #expect("\tRetry-After ".trimmingWhitespace() == "Retry-After")
        #expect("a b\u{00A0}\u{2003}\n".trimmingWhitespace() == "a b")
        #expect("x-y : z".split(separator: ":")[0].trimmingWhitespace() == "x-y")
        #expect(" \r\n\t ".trimmingWhitespace() == "")
        #expect("".trimmingWhitespace() == "")
        #expect("é".trimmingWhitespace() == "é")
    }
}
