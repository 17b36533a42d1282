import Core
import Foundation
import Testing

/// The build's vocabulary below Engine and LLM: hashes, token counts and stage names.
@Suite("Core")
struct CoreTests {
    @Test func sha256MatchesTheStandardVectors() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Data("abc".utf8)) == SHA256.hex("abc"))
    }

    @Test func usageAddsUpAndKeepsUnknownCacheCountsUnknown() {
        let a = TokenUsage(inputTokens: 10, outputTokens: 2)
        let b = TokenUsage(inputTokens: 5, outputTokens: 1, cacheReadTokens: 7)
        let sum = a + b
        #expect(sum.inputTokens == 15 && sum.outputTokens == 3 && sum.cacheReadTokens == 7 && sum.cacheWriteTokens == nil)
    }

    @Test func estimatesErrOnTheLargeSide() {
        #expect(TokenEstimate.of("") == 0)
        #expect(TokenEstimate.of(String(repeating: "a", count: 35)) == 10)
        #expect(TokenEstimate.of(String(repeating: "a", count: 36)) == 11)
        #expect(StageName.all == ["bootstrap", "design", "implement", "test", "verify"])
    }
}
