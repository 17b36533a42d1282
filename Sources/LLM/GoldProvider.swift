import Core
import Foundation

/// `autonomy eval --gold`: a harness check, not a model. It answers implement with the exercise's reference
/// solution (whole files at the solution's paths, every try the same), design with a one-paragraph design and verify
/// with the tests' own verdict. An exercise that fails with it is a harness or toolchain bug or a broken exercise
/// (SWE-bench checks its harness the same way with its gold patches). No network, no key, no cost.
public struct GoldProvider: LLMProvider {
    public let name = "gold"
    public let defaultModel = "gold-reference"
    public let reference: [String: String]

    public init(reference: [String: String]?) throws {
        guard let reference, !reference.isEmpty else {
            throw LLMError(code: .badRequest, provider: "gold", message: "the gold provider answers only benchmark exercises that carry their reference solution (autonomy eval --gold); use claude, openai, openai-compatible or offline for this run")
        }
        self.reference = reference
    }

    public func complete(_ request: LLMRequest) async throws -> LLMResponse {
        let text: String
        switch request.stage {
        case .design:
            text = "# Design\n\nThe reference solution of the exercise, unchanged: \(reference.keys.sorted().map { "`\($0)`" }.joined(separator: ", ")).\n\n## Open questions\n- none\n"
        case .implement:
            text = OfflineProvider.filesJSON(reference.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value) })
        case .verify:
            let passed = request.hints["tests_passed"] == "true"
            text = "# Verification\n\nThe hidden tests \(passed ? "pass" : "fail") with the reference solution (\(request.hints["test_summary"] ?? "")).\n\nVerdict: \(passed ? "PASS" : "FAIL")\n"
        default:
            text = "gold: nothing to do for this request"
        }
        let usage = TokenUsage(inputTokens: TokenEstimate.of(request.prompt), outputTokens: TokenEstimate.of(text))
        return LLMResponse(text: text, model: request.model, usage: usage, requestID: "gold-" + String(request.promptSHA256.prefix(12)))
    }
}
