import Foundation
import PrefectAPI
import Testing
import Worker

/// The run's life with Prefect without a server: every proposal the worker makes against every answer Prefect 3.9's
/// orchestration rules give it (ACCEPT, REJECT with each state, ABORT, WAIT) and every state a read can find.
@Suite("Run lifecycle")
struct RunLifecycleTests {
    static func state(_ type: StateType, _ name: String? = nil, message: String? = nil, scheduled: Date? = nil) -> State {
        State(type: type, name: name, message: message, stateDetails: scheduled.map { StateDetails(scheduledTime: $0) })
    }
    static let accept = OrchestrationResult.accept(state(.running))
    static let abort = OrchestrationResult.abort(reason: "The enclosing flow must be running to begin task execution.")
    static func reject(_ type: StateType?, _ name: String? = nil, reason: String = "refused") -> OrchestrationResult {
        .reject(state: type.map { state($0, name) }, reason: reason)
    }

    /// The action after `answer`, and after the read that follows when the lifecycle asks for one.
    static func after(_ proposal: RunLifecycle.Proposal, _ answer: OrchestrationResult, read: State? = nil) -> (RunLifecycle.Action, RunLifecycle.Action?) {
        var life = RunLifecycle(proposal)
        #expect(life.first == .propose)
        let action = life.handle(.answered(answer))
        guard action == .readRun else { return (action, nil) }
        return (action, life.handle(.read(read)))
    }

    @Test func claims() {
        #expect(Self.after(.claim, Self.accept).0 == .proceed)
        for answer in [Self.abort, Self.reject(.scheduled, "AwaitingConcurrencySlot"), Self.reject(.pending)] {
            guard case .end(.released(let why)) = Self.after(.claim, answer).0 else { Issue.record("\(answer)"); continue }
            #expect(why.hasPrefix("Not claimed: "))
        }
        let due = Date(timeIntervalSince1970: 2_000_000_000)
        #expect(Self.after(.claimInProcess, .reject(state: Self.state(.scheduled, "AwaitingConcurrencySlot", scheduled: due), reason: "limit")).0 == .retry(at: due))
        #expect(Self.after(.claimInProcess, Self.accept).0 == .proceed)
        guard case .end(.released) = Self.after(.claimInProcess, Self.abort).0 else { Issue.record("abort"); return }
    }

    @Test func startingARunThatWasCancelledOrTakenMeanwhile() {
        #expect(Self.after(.start, Self.accept).0 == .proceed)
        #expect(Self.after(.start, Self.reject(.cancelling), read: Self.state(.cancelling)) == (.readRun, .cancel))
        #expect(Self.after(.start, Self.abort, read: Self.state(.cancelled)) == (.readRun, .cancel))
        let (_, taken) = Self.after(.start, Self.abort, read: Self.state(.running))
        #expect(taken == .end(.released("Could not start the run; leaving it as Running")))
    }

    @Test func startingAStage() {
        #expect(Self.after(.startStage("implement-2"), Self.accept).0 == .proceed)
        #expect(Self.after(.startStage("implement-2"), .wait(delaySeconds: 3, reason: "tag limit")).0 == .proceed)
        // A UI Pause or Retry before the stage: released at the boundary.
        for type in [StateType.paused, .scheduled] {
            #expect(Self.after(.startStage("implement-2"), Self.reject(type)).0 == .end(.released("Paused from the Prefect UI before implement; Resume continues from the finished stages")))
        }
        #expect(Self.after(.startStage("implement-2"), Self.reject(.running, reason: "odd")).0 == .end(.crashed("Prefect refused to start task run implement-2: odd")))
        // ABORT (PreventRunningTasksFromStoppedFlows): the flow run's state decides.
        #expect(Self.after(.startStage("test-1"), Self.abort, read: Self.state(.scheduled, "Resuming")).1 == .end(.released("Resuming from the Prefect UI before test; the run continues from the finished stages")))
        #expect(Self.after(.startStage("test-1"), Self.abort, read: Self.state(.paused, "Suspended")).1 == .end(.released("Suspended from the Prefect UI before test; the run continues from the finished stages")))
        #expect(Self.after(.startStage("test-1"), Self.abort, read: Self.state(.cancelling)).1 == .cancel)
        #expect(Self.after(.startStage("test-1"), Self.abort, read: Self.state(.cancelled)).1 == .cancel)
        #expect(Self.after(.startStage("test-1"), Self.abort, read: Self.state(.running)).1 == .end(.crashed("Prefect refused to start task run test-1: the flow run is Running")))
        // The server failed the run meanwhile (pause expiration): not released, not a crash of the worker's making —
        // the crash the lifecycle gives is then left unproposed (see `crashNeverOverwritesAnEnding`).
        guard case .end(.crashed) = Self.after(.startStage("test-1"), Self.abort, read: Self.state(.failed)).1 else { Issue.record("failed"); return }
    }

    @Test func pausingAtAGate() {
        #expect(Self.after(.pause(gate: "design-review"), .accept(Self.state(.paused, "Suspended"))).0 == .proceed)
        // The pause key fired before (a UI Retry forced the run back; HandlePausingFlows keeps the keys).
        #expect(Self.after(.pause(gate: "design-review"), Self.reject(.running, reason: "This run has already fired this pause")).0 == .lookForAnswer)
        #expect(Self.after(.pause(gate: "design-review"), Self.reject(.paused, "Paused")).0 == .end(.released("Paused from the Prefect UI at gate design-review; Resume continues from the finished stages")))
        #expect(Self.after(.pause(gate: "design-review"), Self.reject(.cancelling)).0 == .cancel)
        #expect(Self.after(.pause(gate: "design-review"), Self.reject(.cancelled)).0 == .cancel)
        #expect(Self.after(.pause(gate: "design-review"), Self.reject(.completed, reason: "no")).0 == .end(.crashed("Prefect refused to pause at gate design-review: no")))
        #expect(Self.after(.pause(gate: "design-review"), Self.abort, read: Self.state(.cancelling)).1 == .cancel)
        #expect(Self.after(.pause(gate: "design-review"), Self.abort, read: Self.state(.running)).1 == .end(.crashed("Prefect refused to pause at gate design-review: the flow run is Running")))
    }

    @Test func waitingAtAGateInProcess() {
        func read(_ state: State?) -> RunLifecycle.Action {
            var life = RunLifecycle(.awaitAnswer(gate: "test-failure"))
            #expect(life.first == .readRun)
            return life.handle(.read(state))
        }
        #expect(read(Self.state(.paused)) == .retry(at: nil))
        #expect(read(Self.state(.running)) == .lookForAnswer)
        #expect(read(Self.state(.cancelling)) == .cancel)
        #expect(read(Self.state(.failed, message: "The flow was paused and never resumed.")) == .end(.released("The pause at gate test-failure timed out: The flow was paused and never resumed.")))
        #expect(read(Self.state(.scheduled, "AwaitingRetry")) == .end(.released("The run left its pause (AwaitingRetry) without an answer")))
    }

    @Test func endingsLetAPersonsCancelWin() {
        #expect(Self.after(.finish, .accept(Self.state(.completed))).0 == .proceed)
        #expect(Self.after(.finish, Self.reject(.cancelling)).0 == .cancel)
        #expect(Self.after(.finish, Self.reject(.failed)).0 == .proceed)
    }

    @Test func crashNeverOverwritesAnEnding() {
        for type in StateType.allCases {
            var life = RunLifecycle(.crash("boom"))
            #expect(life.first == .readRun)
            let action = life.handle(.read(Self.state(type, message: "why")))
            if type.isFinal {
                #expect(action == .end(.released("Left \(type.rawValue.capitalized) as the server had ended it: why")), "\(type)")
            } else {
                #expect(action == .propose, "\(type)")
            }
        }
    }

    @Test func handBacksOnlyTakeRunsTheServerHasPendingOrRunning() {
        for type in StateType.allCases {
            var life = RunLifecycle(.handBack("shut down"))
            #expect(life.first == .readRun)
            let action = life.handle(.read(Self.state(type)))
            switch type {
            case .pending, .running:
                #expect(action == .propose)
                #expect(life.handle(.answered(.accept(Self.state(.scheduled, "AwaitingRetry")))) == .end(.handedBack("shut down")))
            case .cancelling: #expect(action == .cancel)
            case .paused: #expect(action == .end(.released("Not handed back: the run is Paused (paused from the UI: a Resume continues it)")))
            default: #expect(action == .end(.released("Not handed back: the run is \(type.rawValue.capitalized)")), "\(type)")
            }
        }
        var racing = RunLifecycle(.handBack("shut down"))
        _ = racing.handle(.read(Self.state(.running)))
        #expect(racing.handle(.answered(Self.reject(.cancelling))) == .cancel)
        var refused = RunLifecycle(.handBack("shut down"))
        _ = refused.handle(.read(Self.state(.running)))
        #expect(refused.handle(.answered(Self.abort)) == .end(.released("Not handed back: ABORT: The enclosing flow must be running to begin task execution.")))
    }

    @Test func stoppedExecutions() {
        #expect(RunLifecycle.stopped(by: .shutdown, error: CancellationError()) == .handedBack("Worker shut down before the run finished; handed back for any worker to continue"))
        #expect(RunLifecycle.stopped(by: .cancelledByUser, error: CancellationError()) == .cancelled("Flow run was cancelled successfully."))
        guard case .released = RunLifecycle.stopped(by: .released, error: CancellationError()) else { Issue.record("released"); return }
        guard case .handedBack = RunLifecycle.stopped(by: nil, error: CancellationError()) else { Issue.record("SIGQUIT"); return }
        struct Boom: Error {}
        guard case .crashed = RunLifecycle.stopped(by: nil, error: Boom()) else { Issue.record("error"); return }
        // An action that does not end a run never passes for an ending.
        guard case .crashed = RunLifecycle.Action.proceed.end else { Issue.record("proceed"); return }
        #expect(RunLifecycle.Action.cancel.end == .cancelled("Flow run was cancelled successfully."))
    }
}
