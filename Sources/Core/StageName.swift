/// The pipeline's five stages, in order.
public enum StageName: String, Sendable, CaseIterable, Codable {
    case bootstrap, design, implement, test, verify

    public static var all: [String] { allCases.map(\.rawValue) }
}
