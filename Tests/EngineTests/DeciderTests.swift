import Engine
import Foundation
import Testing

/// `decided_by` read as who answered: only a person's own answer counts as a person's (a protected test file may be
/// changed, failing tests accepted), never the policy's ("auto"), the deadline's ("timeout") or a default.
@Suite("Who decided")
struct DeciderTests {
    static func decision(_ decidedBy: String?, defaulted: Bool = false) -> Decision {
        Decision(gate: "test-failure", n: 1, stage: .test, stageAttempt: 1, question: "?", options: ["accept", "abort"], choice: "accept", comment: "", decidedBy: decidedBy, defaulted: defaulted, answeredAt: Date(), flowRunID: "r", pauseKey: "test-failure-1", traceEntryID: nil, promptSHA256: nil)
    }

    @Test func recordedValuesRoundTrip() {
        for decider in [Decider.auto, .timeout, .person("ana"), .person(nil)] {
            #expect(Decider(decider.recorded) == decider)
        }
        #expect(Decider("auto") == .auto && Decider("timeout") == .timeout && Decider("terminal") == .person("terminal"))
    }

    @Test func onlyAPersonsOwnAnswerIsAPersons() {
        #expect(Self.decision("ana").isPersons)
        #expect(Self.decision(nil).isPersons)
        #expect(!Self.decision("auto").isPersons)
        #expect(!Self.decision("timeout").isPersons)
        #expect(!Self.decision("ana", defaulted: true).isPersons)
    }
}
