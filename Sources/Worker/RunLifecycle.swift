import Foundation
import PrefectAPI

/// One place that reads Prefect's answers about a run: what the worker proposed, what the server answered (ACCEPT,
/// REJECT, ABORT, WAIT) and, where that is not enough, the run's state as read afterwards, turned into what to do
/// next. A value type like `BuildMachine`: events in, actions out, no I/O; the worker and the executor only carry the
/// actions out. `RunLifecycleTests` go through every answer Prefect 3.9's orchestration rules can give.
public struct RunLifecycle: Sendable, Equatable {
    /// What is being proposed for the run (or, for `crash` and `handBack`, about to be: the run is read first).
    public enum Proposal: Sendable, Equatable {
        /// Pending, by the poll.
        case claim
        /// Pending, by `autonomy run` (its run waits Scheduled out of the polls' reach).
        case claimInProcess
        /// Running, after a claim.
        case start
        /// A stage's task run Running (`implement-2`).
        case startStage(String)
        /// Paused or Suspended at a gate.
        case pause(gate: String)
        /// The Completed or Failed ending (not forced: a person's Cancel wins).
        case finish
        /// A forced Crashed, with its message; never over a run that already ended.
        case crash(String)
        /// Scheduled "AwaitingRetry" for any worker, with its message; only for a run the server has Pending or Running.
        case handBack(String)
        /// Nothing proposed: `autonomy run` waits at a gate's blocking pause and reads the run until it is answered.
        case awaitAnswer(gate: String)
    }

    public enum Event: Sendable, Equatable {
        /// The server's answer to the proposal.
        case answered(OrchestrationResult)
        /// The flow run's state as read (nil: it has none).
        case read(State?)
    }

    public enum Action: Sendable, Equatable {
        /// Send the proposal (after a read that allows it).
        case propose
        /// The proposal holds: go on (execute the run, run the stage, write the gate's form).
        case proceed
        /// Read the flow run and hand its state in as `.read`.
        case readRun
        /// Not now: propose again at this time (`autonomy run` waiting for a deployment concurrency slot), or read again
        /// (still paused at the gate).
        case retry(at: Date?)
        /// A gate's pause key already fired: its answer may be in (the pause's `-response` input or a Resuming after it).
        case lookForAnswer
        /// End the run Cancelled (forced, as Prefect's engine does): a person cancelled it.
        case cancel
        /// The run's execution ends here, as `RunEnd` says (released: the server or a person holds the run).
        case end(RunEnd)

        /// How the execution ends when this action ends it: `end`'s, a person's Cancel, or (an action this step never
        /// gives) a crash that says so.
        public var end: RunEnd {
            switch self {
            case .end(let end): return end
            case .cancel: return .cancelled("Flow run was cancelled successfully.")
            default: return .crashed("The worker's run lifecycle gave \(self) where it ends the run")
            }
        }
    }

    public let proposal: Proposal
    private var proposed = false

    public init(_ proposal: Proposal) { self.proposal = proposal }

    /// What to do first: read the run (`crash`, `handBack`) or propose.
    public var first: Action {
        switch proposal {
        case .crash, .handBack, .awaitAnswer: return .readRun
        default: return .propose
        }
    }

    public mutating func handle(_ event: Event) -> Action {
        switch event {
        case .answered(let result):
            proposed = true
            return answered(result)
        case .read(let state):
            return proposed ? readAfterAnswer(state) : readBeforeProposal(state)
        }
    }

    private func answered(_ result: OrchestrationResult) -> Action {
        switch (proposal, result) {
        case (.claim, .accept), (.claimInProcess, .accept), (.start, .accept), (.pause, .accept), (.finish, .accept):
            return .proceed
        case (.claim, _):
            return .end(.released("Not claimed: \(result.summary)"))
        case (.claimInProcess, .reject(let state, _)) where state?.type == .scheduled:
            return .retry(at: state?.stateDetails?.scheduledTime)
        case (.claimInProcess, _):
            return .end(.released("Could not start the run in this process: \(result.summary)"))
        case (.start, _):
            // Cancelled in the Pending window (Cancelling only goes to Cancelled), or taken: the run's state says.
            return .readRun
        case (.startStage, .accept), (.startStage, .wait):
            return .proceed
        case (.startStage(let stage), .reject(let state, let reason)):
            if state?.type == .paused || state?.type == .scheduled {
                return .end(.released("Paused from the Prefect UI before \(Self.stageName(stage)); Resume continues from the finished stages"))
            }
            return .end(.crashed("Prefect refused to start task run \(stage): \(reason)"))
        case (.startStage, .abort), (.pause, .abort):
            // ABORT: the flow run is no longer Running (task runs) or the server refused outright: its state says why.
            return .readRun
        case (.pause(let gate), .reject(let state, let reason)):
            switch state?.type {
            case .running: return .lookForAnswer
            case .paused: return .end(.released("Paused from the Prefect UI at gate \(gate); Resume continues from the finished stages"))
            case .cancelling, .cancelled: return .cancel
            default: return .end(.crashed("Prefect refused to pause at gate \(gate): \(reason)"))
            }
        case (.finish, .reject(let state, _)) where state?.type == .cancelling:
            return .cancel
        case (.finish, _), (.crash, _), (.awaitAnswer, _):
            return .proceed
        case (.handBack(let message), .accept):
            return .end(.handedBack(message))
        case (.handBack, .reject(let state, _)) where state?.type == .cancelling || state?.type == .cancelled:
            return .cancel
        case (.handBack, _):
            return .end(.released("Not handed back: \(result.summary)"))
        case (_, .wait):
            // proposeFlowRunState waits WAITs out; only a task run's Running may pass one on (the stage goes on).
            return .proceed
        }
    }

    /// The run as read after an answer that did not settle it.
    private func readAfterAnswer(_ state: State?) -> Action {
        let type = state?.type
        if type == .cancelling || type == .cancelled { return .cancel }
        switch proposal {
        case .start:
            return .end(.released("Could not start the run; leaving it as \(Self.name(state))"))
        case .startStage(let stage):
            if type == .paused || type == .scheduled || type == .pending {
                return .end(.released("\(state?.name ?? "Paused") from the Prefect UI before \(Self.stageName(stage)); the run continues from the finished stages"))
            }
            return .end(.crashed("Prefect refused to start task run \(stage): the flow run is \(Self.name(state))"))
        case .pause(let gate):
            return .end(.crashed("Prefect refused to pause at gate \(gate): the flow run is \(Self.name(state))"))
        default:
            return .end(.released("Left as \(Self.name(state))"))
        }
    }

    /// The run as read before a proposal that needs it (`crash`, `handBack`).
    private func readBeforeProposal(_ state: State?) -> Action {
        let type = state?.type
        switch proposal {
        case .crash:
            // A run the server or a person already ended (Prefect's pause expiration fails a UI pause nobody resumed)
            // keeps that ending: a forced Crashed would overwrite it.
            if let type, type.isFinal { return .end(.released("Left \(Self.name(state)) as the server had ended it: \(state?.message ?? "")")) }
            return .propose
        case .handBack:
            switch type {
            case .pending, .running: return .propose
            case .cancelling: return .cancel
            default:
                // The server would accept Paused → Scheduled: a Pause or Suspend from the UI must not be undone.
                return .end(.released("Not handed back: the run is \(Self.name(state))\(type == .paused ? " (paused from the UI: a Resume continues it)" : "")"))
            }
        case .awaitAnswer(let gate):
            switch type {
            // Running again: resumed (the answer is the pause's input or the Resuming), or forced from the UI without one.
            case .running: return .lookForAnswer
            case .paused: return .retry(at: nil)
            case .cancelling, .cancelled: return .cancel
            // Prefect fails a pause whose `pause_timeout` passed (a gate with `on_timeout: fail`).
            case .failed: return .end(.released("The pause at gate \(gate) timed out: \(state?.message ?? "the run failed")"))
            default: return .end(.released("The run left its pause (\(Self.name(state))) without an answer"))
            }
        default:
            return .propose
        }
    }

    /// How an execution ended that was stopped (its task cancelled or an error thrown): why it was stopped decides.
    public static func stopped(by reason: StopSignal.Reason?, error: any Error) -> RunEnd {
        switch reason {
        case .shutdown: return .handedBack("Worker shut down before the run finished; handed back for any worker to continue")
        case .cancelledByUser: return .cancelled("Flow run was cancelled successfully.")
        case .released: return .released("Paused or rescheduled from the Prefect UI while a stage ran: the stage was stopped; Resume continues from the finished stages")
        // Cancelled without a stop signal: the worker itself was stopped at once (SIGQUIT, or it exits because the API
        // was unreachable too long). Nobody cancelled the run: it goes back for any worker to continue.
        case nil where error is CancellationError:
            return .handedBack("The worker was stopped at once (SIGQUIT, or the Prefect API was unreachable for too long) before the run finished; handed back for any worker to continue")
        case nil: return .crashed("Worker failed while running the flow: \(error)")
        }
    }

    private static func name(_ state: State?) -> String { state?.displayName ?? "in no state" }
    /// "implement-2" → "implement" (what the messages about a stage name).
    private static func stageName(_ taskRun: String) -> String {
        guard let dash = taskRun.lastIndex(of: "-"), Int(taskRun[taskRun.index(after: dash)...]) != nil else { return taskRun }
        return String(taskRun[..<dash])
    }
}
