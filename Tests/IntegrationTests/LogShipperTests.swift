import Foundation
import HTTP
import Logging
import PrefectAPI
import Testing
import Worker

@Suite("Log shipper", .timeLimit(.minutes(5)))
struct LogShipperTests {
    @Test func boundedBufferWhileTheAPIIsDownThenDelivered() async throws {
        // Nothing listens on port 1: every flush fails and the lines stay, up to the bound.
        let down = PrefectClient(configuration: .init(apiURL: "http://127.0.0.1:1/api", retry: RetryPolicy.none), http: HTTPClient())
        let shipper = LogShipper(client: down, capacity: 10, logger: Logger(label: "test"))
        for i in 0..<25 { shipper.enqueue(LogCreate(name: "t", level: 20, message: "line \(i)", flowRunID: nil)) }
        #expect(shipper.pendingCount == 10)
        #expect(shipper.droppedCount == 15)
        await shipper.flush()
        #expect(shipper.pendingCount == 10)

        let client = try TestEnvironment.client()
        let flow = try await client.createFlow(name: "log-shipper-test")
        let run = try await client.createFlowRun(FlowRunCreate(flowID: flow.id))
        let up = LogShipper(client: client, capacity: 10, logger: Logger(label: "test"))
        let logger = up.logger(label: "autonomy.test", flowRunID: run.id, level: .info)
        logger.info("shipped through swift-log", metadata: ["stage": "design"])
        logger.debug("below the level")
        await up.flush()
        let logs = try await client.readLogs(flowRunID: run.id)
        #expect(logs.map(\.message) == ["shipped through swift-log (stage=design)"])
        #expect(logs.first?.level == 20)
    }
}
