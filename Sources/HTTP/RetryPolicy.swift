import Foundation
import JSON
import Synchronization

/// Retries as Prefect's own client does: 408/429/502/503 and transport errors, exponential backoff with
/// jitter, and `Retry-After` (seconds or an HTTP-date) honoured, jittered upward only.
public struct RetryPolicy: Sendable {
    public var maxRetries: Int
    public var baseDelay: Duration
    public var maxDelay: Duration
    public var retryStatuses: Set<Int>
    public var retryTransportErrors: Bool
    /// Retries for transport errors (nothing answered), when they should give up sooner than statuses.
    public var maxTransportRetries: Int
    /// 0.2 = ±20 % on backoff, up to +20 % on Retry-After.
    public var jitter: Double

    public init(
        maxRetries: Int = 5, baseDelay: Duration = .seconds(1), maxDelay: Duration = .seconds(30),
        retryStatuses: Set<Int> = [408, 429, 502, 503], retryTransportErrors: Bool = true, maxTransportRetries: Int? = nil,
        jitter: Double = 0.2
    ) {
        self.maxRetries = maxRetries
        self.maxTransportRetries = maxTransportRetries ?? maxRetries
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.retryStatuses = retryStatuses
        self.retryTransportErrors = retryTransportErrors
        self.jitter = jitter
    }

    public static let none = RetryPolicy(maxRetries: 0)

    /// The delay before retry number `attempt` (1-based), given the response that failed, if any.
    public func delay(attempt: Int, retryAfter: String?, now: Date = Date()) -> Duration {
        if let retryAfter, let seconds = Self.parseRetryAfter(retryAfter, now: now) {
            let jittered = seconds * (1 + Double.random(in: 0...jitter))
            return .milliseconds(Int64((min(jittered, maxDelay.seconds * 4)) * 1000))
        }
        let exponential = baseDelay.seconds * pow(2, Double(attempt - 1))
        let capped = min(exponential, maxDelay.seconds)
        let jittered = capped * (1 + Double.random(in: -jitter...jitter))
        return .milliseconds(Int64(max(0, jittered) * 1000))
    }

    /// A delay as servers write it: digits with an optional fraction (`3`, `1.5`). Not `Double(_:)`, which
    /// also takes `-1`, `1e400`, `inf` and `nan`: none of them is a wait.
    public static func parseNumber(_ text: String) -> Double? {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.count <= 9, parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            parts.count == 1 || !parts[1].isEmpty
        else { return nil }
        return Double(text)
    }

    /// `Retry-After: 3` or `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT` → seconds from `now` (never negative).
    public static func parseRetryAfter(_ value: String, now: Date = Date()) -> Double? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = parseNumber(trimmed) { return seconds }
        // An HTTP-date has a weekday, a month name, a year and a time: anything else is not one, and
        // need not go through three date formatters.
        // ASCII only, as HTTP dates are: corelibs' DateFormatter traps on some combining marks (found by
        // scripts/fuzz: "Wed, 21\u{670}ct 2015 07:28:0# GMT" → "Incorrect range CFRange").
        guard trimmed.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), (20...40).contains(trimmed.utf8.count), trimmed.contains(":"),
            trimmed.contains(where: \.isLetter)
        else { return nil }
        let date = httpDateFormatters.withLock { formatters in formatters.lazy.compactMap { $0.date(from: trimmed) }.first }
        return date.map { max(0, $0.timeIntervalSince(now)) }
    }

    /// IMF-fixdate, RFC 850 and asctime (RFC 9110 §5.6.7), made once: a DateFormatter is costly to create.
    private static let httpDateFormatters = Mutex(["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"].map { format in
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = format
        return formatter
    })
}
