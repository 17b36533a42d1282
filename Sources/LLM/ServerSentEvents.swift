import Foundation
import JSON

/// One server-sent event: its `event:` name (if any) and its `data:` lines joined with newlines.
struct ServerSentEvent: Sendable, Equatable {
    var event: String?
    var data: String
}

/// Parses a `text/event-stream` body incrementally, as chunks arrive: lines end with LF, CRLF or CR; `event:`
/// and `data:` fields (one optional space after the colon); comments (`:`) and unknown fields are skipped; a
/// blank line dispatches the event. A chunk may end anywhere, even inside a UTF-8 character.
struct ServerSentEventParser: Sendable {
    private var pending: [UInt8] = []
    private var event: String?
    private var data: [String] = []

    mutating func feed(_ chunk: Data) -> [ServerSentEvent] {
        pending += chunk
        var events: [ServerSentEvent] = []
        var start = 0
        var i = 0
        while i < pending.count {
            let byte = pending[i]
            if byte == 0x0A || byte == 0x0D {
                // A CR at the very end may be the first half of a CRLF still to come.
                if byte == 0x0D && i + 1 == pending.count { break }
                let line = String(decoding: pending[start..<i], as: UTF8.self)
                if byte == 0x0D && pending[i + 1] == 0x0A { i += 1 }
                start = i + 1
                if let dispatched = take(line) { events.append(dispatched) }
            }
            i += 1
        }
        pending.removeFirst(start)
        return events
    }

    private mutating func take(_ line: String) -> ServerSentEvent? {
        if line.isEmpty {
            defer {
                event = nil
                data = []
            }
            return data.isEmpty ? nil : ServerSentEvent(event: event, data: data.joined(separator: "\n"))
        }
        if line.hasPrefix(":") { return nil }
        let (field, value): (Substring, Substring)
        if let colon = line.firstIndex(of: ":") {
            field = line[..<colon]
            var rest = line[line.index(after: colon)...]
            if rest.hasPrefix(" ") { rest = rest.dropFirst() }
            value = rest
        } else {
            (field, value) = (line[...], "")
        }
        switch field {
        case "event": event = String(value)
        case "data": data.append(String(value))
        default: break
        }
        return nil
    }
}

/// Builds the non-streaming answer of a provider out of its stream, so the same reader serves both.
protocol StreamAssembler: Sendable {
    init()
    /// Takes one event; throws an `LLMError` for an `error` event in the stream.
    mutating func add(_ event: ServerSentEvent) throws
    /// Characters of answer text so far (for progress).
    var characters: Int { get }
    /// The answer in the provider's non-streaming JSON shape; throws when the stream ended early.
    func answer() throws -> JSONValue
}

/// Anthropic Messages: `message_start` (id, model, input usage), `content_block_delta` (`text_delta`),
/// `message_delta` (stop_reason, output usage), `message_stop`, `ping`, `error`.
struct AnthropicStream: StreamAssembler {
    private var text = ""
    private var message: [String: JSONValue] = [:]
    private var usage: [String: JSONValue] = [:]
    private var stopReason: JSONValue = .null
    private var stopped = false

    init() {}

    var characters: Int { text.count }

    mutating func add(_ event: ServerSentEvent) throws {
        guard let json = try? JSONValue.parse(event.data) else { return }
        switch json["type"]?.stringValue ?? event.event {
        case "message_start":
            message = json["message"]?.objectValue ?? [:]
            for (k, v) in message["usage"]?.objectValue ?? [:] { usage[k] = v }
        case "content_block_delta":
            if json["delta"]?["type"]?.stringValue == "text_delta" { text += json["delta"]?["text"]?.stringValue ?? "" }
        case "message_delta":
            if let reason = json["delta"]?["stop_reason"], !reason.isNull { stopReason = reason }
            for (k, v) in json["usage"]?.objectValue ?? [:] { usage[k] = v }
        case "message_stop":
            stopped = true
        case "error":
            throw StreamError(type: json["error"]?["type"]?.stringValue ?? "error", message: json["error"]?["message"]?.stringValue ?? "an error event in the stream")
        default:
            break
        }
    }

    func answer() throws -> JSONValue {
        guard stopped || !stopReason.isNull else { throw StreamError(type: "incomplete", message: "the stream ended before message_stop") }
        var result = message
        result["content"] = [["type": "text", "text": .string(text)]]
        result["stop_reason"] = stopReason
        result["usage"] = .object(usage)
        return .object(result)
    }
}

/// OpenAI Chat Completions: `data:` chunks with `choices[0].delta.content` and `finish_reason`, usage in the
/// last chunk (`stream_options.include_usage`), then `data: [DONE]`; an `error` object fails the stream.
struct OpenAIStream: StreamAssembler {
    private var text = ""
    private var finishReason: JSONValue = .null
    private var usage: JSONValue = .null
    private var model: JSONValue = .null
    private var id: JSONValue = .null
    private var done = false

    init() {}

    var characters: Int { text.count }

    mutating func add(_ event: ServerSentEvent) throws {
        if event.data == "[DONE]" {
            done = true
            return
        }
        guard let json = try? JSONValue.parse(event.data) else { return }
        if let error = json["error"], !error.isNull {
            throw StreamError(type: error["type"]?.stringValue ?? error["code"]?.stringValue ?? "error", message: error["message"]?.stringValue ?? "an error in the stream")
        }
        if let m = json["model"], !m.isNull { model = m }
        if let i = json["id"], !i.isNull { id = i }
        if let u = json["usage"], !u.isNull { usage = u }
        if let choice = json["choices"]?.arrayValue?.first {
            text += choice["delta"]?["content"]?.stringValue ?? ""
            if let reason = choice["finish_reason"], !reason.isNull { finishReason = reason }
        }
    }

    func answer() throws -> JSONValue {
        guard done || !finishReason.isNull else { throw StreamError(type: "incomplete", message: "the stream ended before [DONE]") }
        return [
            "id": id, "model": model, "usage": usage,
            "choices": [["index": 0, "message": ["role": "assistant", "content": .string(text)], "finish_reason": finishReason]],
        ]
    }
}

/// An error the provider sent inside a 200 stream (e.g. Anthropic's `overloaded_error`), or a stream cut short.
struct StreamError: Error, Sendable, CustomStringConvertible {
    var type: String
    var message: String

    var description: String { "\(type): \(message.prefix(300))" }

    /// Overload, server errors and a cut stream are worth another attempt.
    var isRetryable: Bool { ["overloaded_error", "api_error", "incomplete", "server_error", "rate_limit_error"].contains(type) }
}
