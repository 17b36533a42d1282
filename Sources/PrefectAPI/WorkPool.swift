import Foundation
import JSON

public struct WorkPool: Decodable, Sendable {
    public var id: String
    public var name: String
    public var type: String
    public var status: String?
    public var isPaused: Bool?
    public var concurrencyLimit: Int?
    public var baseJobTemplate: JSONValue?

    enum CodingKeys: String, CodingKey {
        case id, name, type, status
        case isPaused = "is_paused", concurrencyLimit = "concurrency_limit", baseJobTemplate = "base_job_template"
    }
}

public struct WorkPoolCreate: Encodable, Sendable {
    public var name: String
    public var type: String
    public var description: String?
    public var baseJobTemplate: JSONValue

    public init(name: String, type: String, description: String? = nil, baseJobTemplate: JSONValue = [:]) {
        self.name = name
        self.type = type
        self.description = description
        self.baseJobTemplate = baseJobTemplate
    }

    enum CodingKeys: String, CodingKey {
        case name, type, description
        case baseJobTemplate = "base_job_template"
    }
}

public struct Worker: Decodable, Sendable {
    public var id: String
    public var name: String
    public var status: String?
    public var lastHeartbeatTime: Date?
    enum CodingKeys: String, CodingKey {
        case id, name, status
        case lastHeartbeatTime = "last_heartbeat_time"
    }
}
