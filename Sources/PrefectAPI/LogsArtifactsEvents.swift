import Foundation
import JSON

public struct LogCreate: Encodable, Sendable {
    public var name: String
    public var level: Int
    public var message: String
    public var timestamp: Date
    public var flowRunID: String?
    public var taskRunID: String?

    public init(name: String, level: Int, message: String, timestamp: Date = Date(), flowRunID: String?, taskRunID: String? = nil) {
        self.name = name
        self.level = level
        self.message = message
        self.timestamp = timestamp
        self.flowRunID = flowRunID
        self.taskRunID = taskRunID
    }

    enum CodingKeys: String, CodingKey {
        case name, level, message, timestamp
        case flowRunID = "flow_run_id", taskRunID = "task_run_id"
    }
}

public struct LogEntry: Decodable, Sendable {
    public var name: String
    public var level: Int
    public var message: String
    public var flowRunID: String?
    public var taskRunID: String?
    enum CodingKeys: String, CodingKey {
        case name, level, message
        case flowRunID = "flow_run_id", taskRunID = "task_run_id"
    }
}

public struct ArtifactCreate: Encodable, Sendable {
    public var key: String?
    public var type: String
    public var description: String?
    /// markdown: the text; table: the rows as JSON text (ui-v2 `JSON.parse`s it).
    public var data: JSONValue
    public var flowRunID: String?
    public var taskRunID: String?

    public static func markdown(key: String?, markdown: String, description: String? = nil, flowRunID: String?, taskRunID: String? = nil) -> ArtifactCreate {
        ArtifactCreate(key: key, type: "markdown", description: description, data: .string(markdown), flowRunID: flowRunID, taskRunID: taskRunID)
    }

    /// A progress artifact: `data` is a number from 0 to 100, updated with `updateArtifact`.
    public static func progress(key: String?, percent: Double, description: String? = nil, flowRunID: String?, taskRunID: String? = nil) -> ArtifactCreate {
        ArtifactCreate(key: key, type: "progress", description: description, data: .double(percent), flowRunID: flowRunID, taskRunID: taskRunID)
    }

    /// A table artifact: `data` is a JSON **string** holding the list of row objects.
    public static func table(key: String?, rows: [[String: JSONValue]], description: String? = nil, flowRunID: String?, taskRunID: String? = nil) -> ArtifactCreate {
        let text = JSONValue.array(rows.map { JSONValue.object($0) }).jsonText()
        return ArtifactCreate(key: key, type: "table", description: description, data: .string(text), flowRunID: flowRunID, taskRunID: taskRunID)
    }

    enum CodingKeys: String, CodingKey {
        case key, type, description, data
        case flowRunID = "flow_run_id", taskRunID = "task_run_id"
    }
}

public struct Artifact: Decodable, Sendable {
    public var id: String
    public var key: String?
    public var type: String?
    public var data: JSONValue?
    public var flowRunID: String?
    public var taskRunID: String?
    enum CodingKeys: String, CodingKey {
        case id, key, type, data
        case flowRunID = "flow_run_id", taskRunID = "task_run_id"
    }
}

/// A client-side event (`POST /events`), e.g. `prefect.flow-run.heartbeat`.
public struct Event: Encodable, Sendable {
    public var id: String
    public var occurred: Date
    public var event: String
    public var resource: [String: String]
    public var related: [[String: String]]
    public var payload: JSONValue

    public init(id: String = UUID().uuidString.lowercased(), occurred: Date = Date(), event: String, resource: [String: String], related: [[String: String]] = [], payload: JSONValue = [:]) {
        self.id = id
        self.occurred = occurred
        self.event = event
        self.resource = resource
        self.related = related
        self.payload = payload
    }
}
