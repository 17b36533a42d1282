import Foundation
import JSON
import PrefectAPI
import Testing

/// How the client reads the server's answers to state proposals and what it sends (no server needed; the same
/// behaviour against the real server is in IntegrationTests/LostAnswerTests).
@Suite("Orchestration answers")
struct OrchestrationTests {
    static func state(_ type: StateType, transition: String? = nil, pauseKey: String? = nil) -> State {
        State(type: type, stateDetails: StateDetails(pauseKey: pauseKey, transitionID: transition))
    }

    /// The retry of a committed proposal whose answer was lost is refused as a duplicate with the current state,
    /// which carries our transition id: that is an ACCEPT.
    @Test func aDuplicateOfOurOwnTransitionIsAnAccept() {
        var proposal = StateCreate(type: .completed)
        proposal.stateDetails.transitionID = "t-1"
        let duplicate = OrchestrationResult.reject(state: Self.state(.completed, transition: "t-1"), reason: "This run has already made this state transition.")
        #expect(duplicate.settled(proposing: proposal).acceptedState?.type == .completed)
        let someoneElses = OrchestrationResult.reject(state: Self.state(.completed, transition: "t-2"), reason: "")
        #expect(someoneElses.settled(proposing: proposal).acceptedState == nil)
    }

    /// Without our transition id, the state we proposed counts: Pending (a claim), Running, and a pause only with our
    /// pause key. A UI pause (no key, or another), Cancelling and every other state stay refusals.
    @Test func theProposedStateIsAnAcceptOnlyWhereItCanOnlyBeOurs() {
        let cases: [(StateCreate, State, Bool)] = [
            (StateCreate(type: .pending), Self.state(.pending), true),
            (StateCreate(type: .running), Self.state(.running), true),
            (StateCreate(type: .paused, details: StateDetails(pauseKey: "design-review-1")), Self.state(.paused, pauseKey: "design-review-1"), true),
            (StateCreate(type: .paused, details: StateDetails(pauseKey: "design-review-1")), Self.state(.paused), false),
            (StateCreate(type: .paused, details: StateDetails(pauseKey: "design-review-1")), Self.state(.paused, pauseKey: "other-1"), false),
            (StateCreate(type: .paused, details: StateDetails(pauseKey: "design-review-1")), Self.state(.running), false),
            (StateCreate(type: .running), Self.state(.cancelling), false),
            (StateCreate(type: .cancelling), Self.state(.cancelling), false),
            (StateCreate(type: .failed), Self.state(.scheduled), false),
            (StateCreate(type: .completed), Self.state(.completed), false),
        ]
        for (proposal, current, accepted) in cases {
            let answer = OrchestrationResult.reject(state: current, reason: "").settled(proposing: proposal)
            #expect((answer.acceptedState != nil) == accepted, "\(proposal.type) against \(current.type) \(current.stateDetails?.pauseKey ?? "-")")
        }
        #expect(OrchestrationResult.reject(state: nil, reason: "").settled(proposing: StateCreate(type: .running)).acceptedState == nil)
        #expect(OrchestrationResult.abort(reason: "x").settled(proposing: StateCreate(type: .running)) == .abort(reason: "x"))
    }

    @Test func aHandBackClearsTheInfrastructurePID() throws {
        let cleared = try JSONValue.parse(String(decoding: try JSONEncoder().encode(FlowRunUpdate.withoutInfrastructure), as: UTF8.self))
        #expect(cleared == ["infrastructure_pid": .null])
        let set = try JSONValue.parse(String(decoding: try JSONEncoder().encode(FlowRunUpdate(infrastructurePID: "host:1")), as: UTF8.self))
        #expect(set == ["infrastructure_pid": "host:1"])
    }

    @Test func stageRetriesAreTheTaskRunsPolicy() throws {
        let plain = try JSONValue.parse(String(decoding: try JSONEncoder().encode(TaskRunCreate(name: "design-1", flowRunID: "f", taskKey: "k", dynamicKey: "design-1")), as: UTF8.self))
        #expect(plain["empirical_policy"] == nil)
        let retried = try JSONValue.parse(String(decoding: try JSONEncoder().encode(TaskRunCreate(name: "design-1", flowRunID: "f", taskKey: "k", dynamicKey: "design-1", retries: 2, retryDelaySeconds: 10)), as: UTF8.self))
        #expect(retried["empirical_policy"] == ["retries": 2, "retry_delay": 10])
    }
}
