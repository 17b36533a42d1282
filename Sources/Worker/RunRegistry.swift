import Foundation
import PrefectAPI

/// The runs this worker holds right now, with the signal that stops each.
actor RunRegistry {
    private var runs: [String: StopSignal] = [:]
    private(set) var waiting = 0

    var count: Int { runs.count }
    var ids: [String] { Array(runs.keys) }
    func contains(_ id: String) -> Bool { runs[id] != nil }

    func add(_ id: String) -> StopSignal {
        let signal = StopSignal()
        runs[id] = signal
        return signal
    }

    func remove(_ id: String) { runs[id] = nil }

    func stop(_ id: String, _ reason: StopSignal.Reason) { runs[id]?.stop(reason) }

    func stopAll(_ reason: StopSignal.Reason) {
        for signal in runs.values { signal.stop(reason) }
    }

    func setWaiting(_ n: Int) { waiting = n }
}
