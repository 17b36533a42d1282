import AsyncAlgorithms
import Foundation
import Logging
import PrefectAPI
import ServiceLifecycle
import Synchronization

/// Ships run logs to Prefect's `/logs/`: one batched request about every second for all runs, flushed
/// at run end and on shutdown. While the API is down the buffer is bounded; lines beyond it are dropped
/// and counted.
public final class LogShipper: Service, Sendable {
    private struct State {
        var buffer: [LogCreate] = []
        var dropped = 0
        var reportedDropped = 0
    }

    private let state = Mutex(State())
    private let client: PrefectClient
    public let capacity: Int
    private let logger: Logger

    public init(client: PrefectClient, capacity: Int = 10_000, logger: Logger) {
        self.client = client
        self.capacity = capacity
        self.logger = logger
    }

    public func enqueue(_ log: LogCreate) {
        state.withLock { s in
            if s.buffer.count >= capacity {
                s.dropped += 1
            } else {
                s.buffer.append(log)
            }
        }
    }

    public var droppedCount: Int { state.withLock { $0.dropped } }
    public var pendingCount: Int { state.withLock { $0.buffer.count } }

    /// Sends what is buffered. On failure the lines stay (up to the bound) for the next flush.
    public func flush() async {
        let (batch, newlyDropped) = state.withLock { s -> ([LogCreate], Int) in
            let batch = s.buffer
            s.buffer.removeAll(keepingCapacity: true)
            let d = s.dropped - s.reportedDropped
            s.reportedDropped = s.dropped
            return (batch, d)
        }
        if newlyDropped > 0 {
            logger.warning("log lines dropped while the Prefect API was unreachable", metadata: ["dropped": "\(newlyDropped)"])
        }
        guard !batch.isEmpty else { return }
        do {
            try await client.createLogs(batch)
        } catch {
            state.withLock { s in
                let room = max(0, capacity - s.buffer.count)
                s.dropped += max(0, batch.count - room)
                s.buffer.insert(contentsOf: batch.prefix(room), at: 0)
            }
            logger.debug("shipping logs failed; kept for the next flush", metadata: ["error": "\(error)"])
        }
    }

    /// A service of the worker's group: flushes every `interval` until the group shuts it down (after the worker,
    /// so the runs' last lines are in), then once more — in a task that is not cancelled.
    public func run() async throws {
        await run(interval: .seconds(1))
    }

    public func run(interval: Duration) async {
        for await _ in AsyncTimerSequence(interval: interval, clock: .continuous).cancelOnGracefulShutdown() {
            await flush()
        }
        await flush()
    }

    /// A logger for one run (and optionally one task run): lines go to stderr and to Prefect.
    public func logger(label: String, flowRunID: String, taskRunID: String? = nil, level: Logger.Level) -> Logger {
        var logger = Logger(label: label) { label in
            MultiplexLogHandler([
                StreamLogHandler.standardError(label: label),
                PrefectLogHandler(shipper: self, name: label, flowRunID: flowRunID, taskRunID: taskRunID),
            ])
        }
        logger.logLevel = level
        logger[metadataKey: "flow_run.id"] = "\(flowRunID)"
        if let taskRunID { logger[metadataKey: "task_run.id"] = "\(taskRunID)" }
        return logger
    }
}

/// swift-log → Prefect log lines (level as Python's integers). Metadata other than ids is appended.
struct PrefectLogHandler: LogHandler {
    let shipper: LogShipper
    let name: String
    let flowRunID: String
    let taskRunID: String?
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        for (k, v) in event.metadata ?? [:] { merged[k] = v }
        let extra = merged.filter { !["flow_run.id", "task_run.id"].contains($0.key) }
            .sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let message = extra.isEmpty ? "\(event.message)" : "\(event.message) (\(extra))"
        shipper.enqueue(LogCreate(name: name, level: Self.pythonLevel(event.level), message: message, flowRunID: flowRunID, taskRunID: taskRunID))
    }

    static func pythonLevel(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 10
        case .info, .notice: return 20
        case .warning: return 30
        case .error: return 40
        case .critical: return 50
        }
    }
}
