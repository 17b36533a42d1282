import Engine
import Foundation
import JSON

/// A run's job variables as Prefect's workers compute them: the pool's base-job-template defaults, then the
/// deployment's `job_variables`, then the run's own; later wins, and `env` objects are merged key by key (so a
/// deployment's env and a run's env both reach the test command).
public enum JobVariables {
    public static func merged(poolTemplate: JSONValue?, deployment: [String: JSONValue]?, run: [String: JSONValue]?) -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        for (name, property) in poolTemplate?["variables"]?["properties"]?.objectValue ?? [:] {
            if let value = property["default"], !value.isNull { result[name] = value }
        }
        for layer in [deployment ?? [:], run ?? [:]] {
            for (name, value) in layer where !value.isNull {
                if name == "env", let env = value.objectValue {
                    var combined = result["env"]?.objectValue ?? [:]
                    for (k, v) in env { combined[k] = v }
                    result["env"] = .object(combined)
                } else {
                    result[name] = value
                }
            }
        }
        return result
    }
}
