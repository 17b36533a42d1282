import CCurl
import CSystem
import Foundation
import JSON
import Synchronization

/// One libcurl multi handle driven by one dedicated thread, so no transfer ever blocks Swift's
/// cooperative pool. Callers hand over `Sendable` jobs through a mutex and wake the thread with
/// `curl_multi_wakeup`; every other curl call stays on the thread. The multi handle owns the
/// connection cache, so kept-alive connections are reused across requests.
///
/// Its life is `Lifecycle` (a value type: events in, actions out). The thread starts with the first request or
/// `start()`, holds this object (never the `HTTPClient` around it) and ends after `shutdown()`, failing what is
/// still in flight. The multi handle is freed under the same lock that guards every `curl_multi_wakeup`, so a
/// request or cancel racing a shutdown never wakes a freed handle.
final class CurlMulti: Sendable {
    struct Options: Sendable {
        var connectTimeout: Duration
        var timeout: Duration
        var caBundle: String?
        var userAgent: String
        var maxResponseBytes: Int
    }

    struct Job: Sendable {
        let id: UInt64
        let request: HTTPRequest
        let continuation: CheckedContinuation<HTTPResponse, any Error>
    }

    /// The client's life and its bookkeeping of requests. Every method is one event; what it returns is what the
    /// caller must do after releasing the lock.
    struct Lifecycle {
        enum Phase: Equatable { case idle, running, shuttingDown, finished }
        var phase = Phase.idle
        var nextID: UInt64 = 0
        /// Ids handed out whose job has not been submitted yet (the window where a cancel can come first).
        var reserved: Set<UInt64> = []
        /// Reserved ids cancelled before their submit: a subset of `reserved`, so it never outgrows the requests
        /// being started.
        var cancelledEarly: Set<UInt64> = []
        var pending: [UInt64: Job] = [:]
        var pendingOrder: [UInt64] = []
        var active: Set<UInt64> = []
        var cancelRequests: [UInt64] = []
        var finishedWaiters: [CheckedContinuation<Void, Never>] = []

        /// What a caller does after an event.
        struct Action {
            var startThread = false
            var wake = false
            var fail: (Job, any Error)?
            var freeHandle = false
        }

        static let shutDownError = HTTPError(code: .shutdown, message: "the HTTP client was shut down")

        mutating func reserve() -> UInt64 {
            nextID += 1
            reserved.insert(nextID)
            return nextID
        }

        mutating func start() -> Action {
            guard phase == .idle else { return Action() }
            phase = .running
            return Action(startThread: true)
        }

        mutating func submit(_ job: Job) -> Action {
            reserved.remove(job.id)
            if cancelledEarly.remove(job.id) != nil { return Action(fail: (job, CancellationError())) }
            switch phase {
            case .shuttingDown, .finished: return Action(fail: (job, Self.shutDownError))
            case .idle, .running:
                pending[job.id] = job
                pendingOrder.append(job.id)
                var action = start()
                action.wake = !action.startThread
                return action
            }
        }

        /// A cancel for an id that is neither reserved, pending nor in flight came after its answer: nothing to do.
        mutating func cancel(_ id: UInt64) -> Action {
            if let job = pending.removeValue(forKey: id) {
                pendingOrder.removeAll { $0 == id }
                return Action(fail: (job, CancellationError()))
            }
            if active.contains(id) {
                cancelRequests.append(id)
                return Action(wake: phase == .running || phase == .shuttingDown)
            }
            if reserved.contains(id) { cancelledEarly.insert(id) }
            return Action()
        }

        mutating func shutdown() -> Action {
            switch phase {
            case .idle:
                phase = .finished
                return Action(freeHandle: true)
            case .running:
                phase = .shuttingDown
                return Action(wake: true)
            case .shuttingDown, .finished: return Action()
            }
        }

        /// The thread takes what arrived since its last turn.
        mutating func take() -> (jobs: [Job], cancels: [UInt64], stop: Bool) {
            let jobs = pendingOrder.compactMap { pending.removeValue(forKey: $0) }
            pendingOrder.removeAll()
            for job in jobs { active.insert(job.id) }
            defer { cancelRequests.removeAll() }
            return (jobs, cancelRequests, phase == .shuttingDown)
        }

        /// The thread ended: the handle is freed (under this lock) and whoever waits for the end is told.
        mutating func threadEnded() -> [CheckedContinuation<Void, Never>] {
            phase = .finished
            active.removeAll()
            cancelRequests.removeAll()
            defer { finishedWaiters.removeAll() }
            return finishedWaiters
        }

        /// Requests this client still keeps track of (for tests: bounded, nothing left behind).
        var tracked: Int { reserved.count + cancelledEarly.count + pending.count + active.count + cancelRequests.count }
    }

    /// `CURLM*` is a raw pointer; `curl_multi_wakeup` is documented thread-safe, and it is the only call made on this
    /// pointer from other threads, always under `state`'s lock while the handle is alive.
    private struct MultiRef: @unchecked Sendable { let pointer: UnsafeMutableRawPointer }

    private let state = Locked(Lifecycle())
    private let multi: MultiRef
    let options: Options
    /// The curl thread's name (Linux's 15-character limit), distinct per client so a test can find its thread.
    let threadName: String

    private static let counter = Atomic<Int>(0)

    init(options: Options) {
        Self.globalInit
        self.options = options
        guard let handle = curl_multi_init() else { fatalError("curl_multi_init failed: out of memory") }
        self.multi = MultiRef(pointer: handle)
        self.threadName = "curl-\(Self.counter.add(1, ordering: .relaxed).newValue % 100_000)"
    }

    deinit {
        // Only reached when the thread is not running (it holds this object): free the handle if it never started.
        if state.withLock({ $0.phase }) == .idle { curl_multi_cleanup(multi.pointer) }
    }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    func nextID() -> UInt64 { state.withLock { $0.reserve() } }

    func start() { event { $0.start() } }

    func submit(_ job: Job) { event { $0.submit(job) } }

    func cancel(id: UInt64) { event { $0.cancel(id) } }

    /// Fails in-flight and queued requests and ends the thread; later requests fail at once.
    func shutdown() { event { $0.shutdown() } }

    /// Returns when the thread has ended (at once if it never started or has already ended).
    func finished() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.phase == .finished { return true }
                s.finishedWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    var tracked: Int { state.withLock { $0.tracked } }

    /// Runs one lifecycle event under the lock; wakes or frees the handle under that same lock, the rest after it.
    private func event(_ body: (inout Lifecycle) -> Lifecycle.Action) {
        let action = state.withLock { s in
            let action = body(&s)
            if action.wake { curl_multi_wakeup(multi.pointer) }
            if action.freeHandle { curl_multi_cleanup(multi.pointer) }
            return action
        }
        if let (job, error) = action.fail { job.continuation.resume(throwing: error) }
        if action.startThread {
            let thread = Thread { [self] in
                // Foundation's `Thread.name` does not reach the kernel on Linux; /proc and debuggers show this one.
                _ = csystem_set_thread_name(threadName)
                self.runLoop()
            }
            thread.start()
        }
    }

    // MARK: - The thread

    private func runLoop() {
        var transfers: [UnsafeMutableRawPointer: Transfer] = [:]
        var idle: [UnsafeMutableRawPointer] = []
        let m = multi.pointer

        func finish(_ transfer: Transfer, _ result: Result<HTTPResponse, any Error>) {
            curl_multi_remove_handle(m, transfer.easy)
            transfers[transfer.easy] = nil
            curl_easy_reset(transfer.easy)
            idle.append(transfer.easy)
            state.withLock { _ = $0.active.remove(transfer.job.id) }
            transfer.job.continuation.resume(with: result)
        }
        func fail(_ job: Job, _ error: any Error) {
            state.withLock { _ = $0.active.remove(job.id) }
            job.continuation.resume(throwing: error)
        }

        while true {
            let (jobs, cancels, stop) = state.withLock { $0.take() }
            if stop {
                for transfer in Array(transfers.values) { finish(transfer, .failure(Lifecycle.shutDownError)) }
                for job in jobs { fail(job, Lifecycle.shutDownError) }
                for easy in idle { curl_easy_cleanup(easy) }
                let waiters = state.withLock { s in
                    curl_multi_cleanup(m)
                    return s.threadEnded()
                }
                for waiter in waiters { waiter.resume() }
                return
            }
            for job in jobs {
                guard let easy = idle.popLast() ?? curl_easy_init() else {
                    fail(job, HTTPError(code: .transport, message: "curl_easy_init failed: out of memory"))
                    continue
                }
                let transfer = Transfer(job: job, easy: easy)
                if let error = configure(transfer) {
                    curl_easy_reset(easy)
                    idle.append(easy)
                    fail(job, error)
                    continue
                }
                let added = curl_multi_add_handle(m, easy)
                guard added == CURLM_OK else {
                    curl_easy_reset(easy)
                    idle.append(easy)
                    let method = job.request.method.rawValue, url = Self.redactedURL(job.request.url)
                    fail(job, HTTPError(code: .transport, message: "\(method) \(url): libcurl could not start the transfer: \(String(cString: curl_multi_strerror(added)))"))
                    continue
                }
                transfers[easy] = transfer
            }
            for id in cancels {
                if let transfer = transfers.values.first(where: { $0.job.id == id }) {
                    finish(transfer, .failure(CancellationError()))
                }
            }

            var running: Int32 = 0
            curl_multi_perform(m, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(m, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                    let transfer = transfers[easy]
                else { continue }
                let code = ccurl_msg_result(message)
                finish(transfer, result(of: transfer, code: code))
            }
            let now = ContinuousClock.now
            var watched = false
            for transfer in Array(transfers.values) {
                guard let limit = transfer.job.request.inactivityTimeout else { continue }
                guard now - transfer.lastActivity > limit else {
                    watched = true
                    continue
                }
                let url = Self.redactedURL(transfer.job.request.url)
                finish(transfer, .failure(HTTPError(code: .timeout, message: "\(transfer.job.request.method.rawValue) \(url): nothing arrived for \(Int(limit.seconds.rounded())) s (the inactivity timeout)")))
            }
            var fds: Int32 = 0
            curl_multi_poll(m, nil, 0, Self.pollTimeout(curl: m, idle: transfers.isEmpty, watched: watched), &fds)
        }
    }

    /// How long the thread sleeps: until libcurl's next timer, at most a second while an inactivity timeout is being
    /// watched, and with nothing in flight until a request or a shutdown wakes it (no idle wake-ups).
    private static func pollTimeout(curl m: UnsafeMutableRawPointer, idle: Bool, watched: Bool) -> Int32 {
        if idle { return Int32.max }
        var wanted = -1
        curl_multi_timeout(m, &wanted)
        let cap = watched ? 1000 : Int(Int32.max)
        return Int32(wanted < 0 ? cap : min(wanted, cap))
    }
}

/// A value behind a pthread mutex (Foundation's `NSLock`). Not `Synchronization.Mutex`: on Linux that is a futex
/// ThreadSanitizer cannot see, so every access under it would be reported as a race and the client's real races
/// (which CI looks for with `--sanitize=thread`) would drown.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
