import Foundation
@testable import HTTP
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

/// The HTTP client's life: requests and cancels racing a shutdown, bookkeeping that does not grow, a thread that
/// sleeps when idle and ends when the client goes away. CI also runs this suite under ThreadSanitizer.
@Suite("HTTP client lifecycle")
struct HTTPLifecycleTests {
    let server: FixtureServer
    init() throws { server = try FixtureServer() }

    enum Outcome: Sendable, Equatable { case answered, shutDown, cancelled, other(String) }

    static func outcome(_ body: () async throws -> HTTPResponse) async -> Outcome {
        do {
            let response = try await body()
            return response.status == 200 ? .answered : .other("status \(response.status)")
        } catch let error as HTTPError where error.code == .shutdown {
            return .shutDown
        } catch is CancellationError {
            return .cancelled
        } catch {
            return .other("\(error)")
        }
    }

    /// Waits for `count` outcomes for at most `seconds`: a request the client lost would otherwise hang the suite.
    static func collect(_ count: Int, within seconds: Double, _ start: (AsyncStream<Outcome>.Continuation) -> Void) async -> [Outcome] {
        let (stream, continuation) = AsyncStream<Outcome>.makeStream()
        start(continuation)
        let deadline = Task {
            try await Task.sleep(for: .seconds(seconds))
            continuation.finish()
        }
        var outcomes: [Outcome] = []
        for await outcome in stream {
            outcomes.append(outcome)
            if outcomes.count == count { break }
        }
        deadline.cancel()
        return outcomes
    }

    @Test func requestsAndCancelsRacingAShutdownAllEnd() async throws {
        for round in 0..<25 {
            let http = HTTPClient(configuration: .init(retry: .none))
            let requests = 30
            let outcomes = await Self.collect(requests, within: 20) { sink in
                for i in 0..<requests {
                    let task = Task {
                        let path = i % 3 == 0 ? "/slow?ms=\(i * 3)" : "/hello"
                        sink.yield(await Self.outcome { try await http.send(HTTPRequest(url: server.base + path)) })
                    }
                    if i % 4 == 1 {
                        Task {
                            try? await Task.sleep(for: .microseconds((i * 137 + round * 71) % 3000))
                            task.cancel()
                        }
                    }
                }
                Task {
                    try? await Task.sleep(for: .microseconds((round * 997) % 20_000))
                    http.shutdown()
                }
            }
            #expect(outcomes.count == requests, "round \(round): \(requests - outcomes.count) requests never ended")
            #expect(outcomes.allSatisfy { [.answered, .shutDown, .cancelled].contains($0) }, "round \(round): \(outcomes)")
            await http.finished()
            #expect(http.tracked == 0, "round \(round)")
            let late = await Self.outcome { try await http.send(HTTPRequest(url: server.base + "/hello")) }
            #expect(late == .shutDown)
        }
    }

    @Test func cancelsBeforeAndAfterTheAnswerLeaveNothingBehind() async throws {
        let http = HTTPClient(configuration: .init(retry: .none))
        defer { http.shutdown() }
        let outcomes = await Self.collect(400, within: 60) { sink in
            for i in 0..<400 {
                let task = Task { sink.yield(await Self.outcome { try await http.send(HTTPRequest(url: server.base + "/hello")) }) }
                if i % 2 == 0 { task.cancel() } else { Task { task.cancel() } }
            }
        }
        #expect(outcomes.count == 400)
        #expect(outcomes.allSatisfy { $0 == .answered || $0 == .cancelled }, "\(outcomes.filter { $0 != .answered && $0 != .cancelled })")
        #expect(http.tracked == 0)
    }

    @Test func theLifecycleForgetsCancelsThatCameTooLate() async throws {
        var life = CurlMulti.Lifecycle()
        // A cancel for a request that already has its answer (the id is no longer tracked): nothing is kept.
        let done = life.reserve()
        life.reserved.remove(done)
        for _ in 0..<1000 { _ = life.cancel(done) }
        #expect(life.tracked == 0)
        // A cancel that came before its submit fails the submit and is then forgotten.
        let early = life.reserve()
        _ = life.cancel(early)
        #expect(life.cancelledEarly == [early])
        var quiet = false
        var cancelled = false
        do {
            _ = try await withCheckedThrowingContinuation { (job: CheckedContinuation<HTTPResponse, any Error>) in
                let action = life.submit(.init(id: early, request: HTTPRequest(url: "http://127.0.0.1:1/"), continuation: job))
                quiet = !action.startThread && !action.wake
                if let (job, error) = action.fail { job.continuation.resume(throwing: error) } else { job.resume(throwing: TestFailure("the early-cancelled request was queued")) }
            }
        } catch {
            cancelled = error is CancellationError
        }
        #expect(quiet && cancelled)
        #expect(life.tracked == 0)
        // A shutdown before the thread ever started frees the handle at once; after it, nothing wakes it.
        var fresh = CurlMulti.Lifecycle()
        #expect(fresh.shutdown().freeHandle)
        #expect(fresh.phase == .finished)
        #expect(!fresh.shutdown().wake && !fresh.cancel(fresh.reserve()).wake)
    }

    /// The voluntary context switches of this process's thread with the given name, or nil when there is none.
    static func switches(ofThread name: String) -> Int? {
        for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? [] {
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                comm.trimmingWhitespace() == name,
                let status = try? String(contentsOfFile: "/proc/self/task/\(task)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("voluntary_ctxt_switches:") }),
                let value = Int(line.split(separator: ":")[1].trimmingWhitespace())
            else { continue }
            return value
        }
        return nil
    }

    @Test func anIdleClientsThreadSleepsUntilARequest() async throws {
        let http = HTTPClient()
        defer { http.shutdown() }
        #expect(try await http.send(HTTPRequest(url: server.base + "/hello")).status == 200)
        try await Task.sleep(for: .milliseconds(200))
        let before = try #require(Self.switches(ofThread: http.threadName))
        try await Task.sleep(for: .seconds(3.5))
        let after = try #require(Self.switches(ofThread: http.threadName))
        #expect(after - before <= 1, "the idle curl thread woke \(after - before) times in 3.5 s")
        #expect(try await http.send(HTTPRequest(url: server.base + "/hello")).status == 200)
    }

    @Test func aDroppedClientEndsItsThread() async throws {
        var name = ""
        do {
            let http = HTTPClient()
            name = http.threadName
            #expect(try await http.send(HTTPRequest(url: server.base + "/hello")).status == 200)
            #expect(Self.switches(ofThread: name) != nil)
        }
        #expect(try await Self.threadEnds(name), "the curl thread of a client nobody holds is still running")
    }

    @Test func asAServiceItsThreadEndsWithTheGroup() async throws {
        let http = HTTPClient()
        let service = Task { try await http.run() }
        #expect(try await http.send(HTTPRequest(url: server.base + "/hello")).status == 200)
        let slow = Task { await Self.outcome { try await http.send(HTTPRequest(url: server.base + "/slow?ms=5000")) } }
        try await Task.sleep(for: .milliseconds(300))
        service.cancel()
        try await service.value
        #expect(await slow.value == .shutDown)
        #expect(await Self.outcome { try await http.send(HTTPRequest(url: server.base + "/hello")) } == .shutDown)
        // `run()` returns once the thread has freed libcurl's handle and said so; the kernel's thread goes a moment after.
        #expect(try await Self.threadEnds(http.threadName), "the curl thread outlived the service")
    }

    /// Whether the thread with this name is gone within 5 s.
    static func threadEnds(_ name: String) async throws -> Bool {
        for _ in 0..<100 {
            if switches(ofThread: name) == nil { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}
