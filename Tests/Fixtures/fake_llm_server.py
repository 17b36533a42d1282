#!/usr/bin/env python3
"""A local stand-in for the Anthropic Messages API and OpenAI Chat Completions (127.0.0.1 only).

Usage: fake_llm_server.py PORT_FILE
The first path segment picks a scenario; the rest is the API path:
  /<scenario>/v1/messages          Anthropic      /<scenario>/chat/completions   OpenAI
Scenarios: ok, ratelimit1 (429 + retry-after: 1 once), overloaded1 (529 once), error500x1 (500 once),
always503, bad400, unauth401, forbid403, quota (OpenAI 429 insufficient_quota), spend (Anthropic 429 spend
limit), slow (sleeps 3 s), garbage (200 with non-JSON), ratelimitms (429 + retry-after-ms: 300 once).
GET /requests returns every request seen: [{scenario, path, headers, body}]; GET /reset clears it.
With "stream": true in the request, every successful answer is sent as server-sent events in the provider's
own format (Anthropic message_start … message_stop; OpenAI chunks, a usage chunk, [DONE]), a few characters
per event. Scenario flags after "scripted", joined by "-" (e.g. /scripted-cut-preamble/...):
  cut        the first answer stops halfway with stop_reason max_tokens / finish_reason length; a request that
             carries the partial answer (the assistant's turn) gets the rest
  cutalways  every answer is cut
  preamble   the JSON comes after a sentence and inside a ```json fence, with a closing remark
  overload   (streaming) the first stream of each stage breaks with an overloaded_error event
  agent      the implement answer is an object {"fixes": [{"path", "search", "replace", "read"?}], "summary"} and the
             server acts as a coding model would: while a fix's SEARCH lines are nowhere in the conversation it
             asks to read the file (the fix's "read", e.g. "path:START-END", or the whole path), then answers with
             search/replace blocks after a sentence, inside a ``` fence; usage counts ~4 characters a token
  sloppy     (with agent) the first blocks quote a line that is not in the file; after the worker's correction the
             blocks are right
  exercise   a stage's answer may be an object {MARKER: [answer, ...]}: the answers for the prompt that contains
             MARKER (a benchmark exercise's name), one per call of that stage for that marker, the last repeated
Scenario "scripted" answers each pipeline stage with the text POSTed to /answers as {"design": "...",
"implement": "...", "test": "...", "verify": "..."}; the stage is read from the prompt's first line. A list
gives one answer per call of that stage, the last one repeated.
"""
import http.server, json, os, socketserver, sys, threading, time

seen = []
counts = {}
answers = {}
served = {}
streams = {}


def continuing(body, anthropic):
    """The partial answer a continuation request carries as the assistant's turn, else None."""
    messages = body.get("messages", [])
    roles = [m.get("role") for m in messages]
    if "assistant" not in roles:
        return None
    content = messages[roles.index("assistant")].get("content")
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


def body_has_cache_control(body):
    for m in body.get("messages", []):
        if isinstance(m.get("content"), list) and any("cache_control" in b for b in m["content"]):
            return True
    return False
STAGES = {"software architect": "design", "implementer": "implement", "test engineer": "test", "verifier": "verify"}

def stage_of(body):
    text = json.dumps(body.get("messages", []))
    for words, stage in STAGES.items():
        if "You are the " + words in text:
            return stage
    return None
lock = threading.Lock()


def conversation(body):
    """Every text the model has been shown: the system prompt and every message."""
    parts = [body.get("system") or ""]
    for m in body.get("messages", []):
        content = m.get("content")
        parts.append(content if isinstance(content, str) else "".join(b.get("text", "") for b in content or []))
    return "\n".join(p if isinstance(p, str) else json.dumps(p) for p in parts)


def agent(body, script, sloppy):
    """What a coding model answers: a request to read what it has not seen, else its edits as blocks."""
    seen_text = conversation(body)
    for fix in script["fixes"]:
        if fix["search"] and fix["search"] not in seen_text:
            return "I need to see the code first.\n\n```json\n" + json.dumps({"read": [fix.get("read") or fix["path"]]}) + "\n```\n"
    corrected = "did not apply" in seen_text
    blocks = []
    for fix in script["fixes"]:
        search = fix["search"]
        if sloppy and not corrected:
            search = "# a line the model misremembered\n" + search
        blocks.append("%s\n```python\n<<<<<<< SEARCH\n%s=======\n%s>>>>>>> REPLACE\n```\n" % (fix["path"], search, fix["replace"]))
    return "Here is the fix.\n\n" + "\n".join(blocks) + "\n```json\n" + json.dumps({"summary": script.get("summary", "fix")}) + "\n```\n"

def anthropic_ok(body):
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": [{"type": "text", "text": "hello from fake claude"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 11, "output_tokens": 7}}

def openai_ok(body):
    return {"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello from fake openai"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 13, "completion_tokens": 5, "total_tokens": 18}}

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def stream(self, anthropic, body, text, stop, usage, headers, fail_midway=False):
        """Sends one answer as server-sent events, in small pieces."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        pieces = [text[i:i + 7] for i in range(0, len(text), 7)] or [""]
        def emit(event, data):
            frame = ("event: %s\n" % event if event else "") + "data: %s\n\n" % (data if isinstance(data, str) else json.dumps(data))
            self.wfile.write(frame.encode())
            self.wfile.flush()
        if anthropic:
            emit("message_start", {"type": "message_start", "message": {"id": "msg_stream", "type": "message", "role": "assistant", "model": body.get("model"), "content": [], "stop_reason": None, "usage": {"input_tokens": usage[0], "output_tokens": 1, "cache_read_input_tokens": usage[2], "cache_creation_input_tokens": usage[3]}}})
            emit("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            emit("ping", {"type": "ping"})
            for n, piece in enumerate(pieces):
                if fail_midway and n == 1:
                    emit("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                    return
                emit("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
            emit("content_block_stop", {"type": "content_block_stop", "index": 0})
            emit("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": usage[1]}})
            emit("message_stop", {"type": "message_stop"})
        else:
            emit(None, {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "model": body.get("model"), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
            for piece in pieces:
                emit(None, {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "model": body.get("model"), "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            emit(None, {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "model": body.get("model"), "choices": [{"index": 0, "delta": {}, "finish_reason": stop}]})
            emit(None, {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "model": body.get("model"), "choices": [], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": usage[0] + usage[1], "prompt_tokens_details": {"cached_tokens": usage[2]}}})
            emit(None, "[DONE]")
        self.close_connection = True

    def answer(self, anthropic, body, text, headers, cut=False, fail_midway=False, usage=(11, 7)):
        """A successful answer: JSON, or a stream when the request asked for one."""
        stop = ("max_tokens" if anthropic else "length") if cut else ("end_turn" if anthropic else "stop")
        cached = 100 if body_has_cache_control(body) else 0
        usage = (usage[0], usage[1], cached, 50 if cached else 0)
        if body.get("stream"):
            return self.stream(anthropic, body, text, stop, usage, headers, fail_midway)
        if anthropic:
            obj = {"id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model"), "content": [{"type": "text", "text": text}], "stop_reason": stop, "usage": {"input_tokens": usage[0], "output_tokens": usage[1], "cache_read_input_tokens": usage[2], "cache_creation_input_tokens": usage[3]}}
        else:
            obj = {"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"), "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": stop}], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": usage[0] + usage[1], "prompt_tokens_details": {"cached_tokens": usage[2]}}}
        self.send(200, obj, headers)

    def send(self, status, obj, headers=None, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/requests":
            with lock:
                self.send(200, seen)
        elif self.path == "/reset":
            with lock:
                seen.clear(); counts.clear()
            self.send(200, {})
        else:
            self.send(404, {"error": "no"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path == "/answers":
            with lock:
                answers.clear(); answers.update(body); served.clear(); streams.clear()
            return self.send(200, {})
        parts = self.path.strip("/").split("/", 1)
        scenario, api = parts[0], "/" + (parts[1] if len(parts) > 1 else "")
        anthropic = api.endswith("/messages")
        with lock:
            seen.append({"scenario": scenario, "path": api, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            counts[scenario] = counts.get(scenario, 0) + 1
            n = counts[scenario]
        rid = {"request-id": "req_fake_%d" % n} if anthropic else {"x-request-id": "req_fake_%d" % n}
        ok = (anthropic_ok if anthropic else openai_ok)(body)
        def err(status, etype, msg, extra=None):
            h = dict(rid); h.update(extra or {})
            if anthropic:
                self.send(status, {"type": "error", "error": {"type": etype, "message": msg}}, h)
            else:
                self.send(status, {"error": {"message": msg, "type": etype, "code": etype}}, h)
        if scenario.startswith("scripted"):
            flags = scenario.split("-")[1:]
            stage = stage_of(body) or ""
            partial = continuing(body, anthropic)
            with lock:
                if partial is None:
                    served[stage] = served.get(stage, 0) + 1
                k = max(1, served.get(stage, 1))
                streams[stage] = streams.get(stage, 0) + 1
                first_stream = streams[stage] == 1
            text = answers.get(stage, "no scripted answer for this prompt")
            if "exercise" in flags and isinstance(text, dict):
                shown = conversation(body)
                marker = next((m for m in sorted(text, key=len, reverse=True) if m in shown), None)
                with lock:
                    if partial is None:
                        served[(stage, marker)] = served.get((stage, marker), 0) + 1
                    k = max(1, served.get((stage, marker), 1))
                text = text.get(marker, ["no scripted answer for this exercise"])
            if "agent" in flags and isinstance(text, dict):
                text = agent(body, text, "sloppy" in flags)
                return self.answer(anthropic, body, text, rid, usage=(len(json.dumps(body)) // 4, (len(text) + 3) // 4))
            if isinstance(text, list):
                text = text[min(k, len(text)) - 1]
            if "preamble" in flags:
                text = "Sure! Here is the answer you asked for:\n\n```json\n" + text + "\n```\n\nLet me know if anything should change."
            cut = False
            if "cutalways" in flags:
                start = len(partial) if partial is not None else 0
                text, cut = text[start:start + max(1, len(text) // 4)], True
            elif "cut" in flags:
                if partial is None:
                    text, cut = text[:len(text) // 2], True
                else:
                    text = text[len(partial):]
            self.answer(anthropic, body, text, rid, cut=cut, fail_midway="overload" in flags and first_stream and bool(body.get("stream")))
        elif scenario == "ok":
            self.answer(anthropic, body, "hello from fake claude" if anthropic else "hello from fake openai", rid)
        elif scenario == "ratelimit1" and n == 1:
            err(429, "rate_limit_error", "Rate limited", {"retry-after": "1"})
        elif scenario == "ratelimitms" and n == 1:
            err(429, "rate_limit_exceeded", "Rate limited", {"retry-after-ms": "300"})
        elif scenario == "overloaded1" and n == 1:
            err(529, "overloaded_error", "Overloaded")
        elif scenario == "error500x1" and n == 1:
            err(500, "api_error", "Internal error")
        elif scenario == "always503":
            err(503, "api_error", "Service unavailable")
        elif scenario == "bad400":
            err(400, "invalid_request_error", "max_tokens: too large")
        elif scenario == "unauth401":
            err(401, "authentication_error", "invalid x-api-key")
        elif scenario == "forbid403":
            err(403, "permission_error", "no access to model")
        elif scenario == "quota":
            err(429, "insufficient_quota", "You exceeded your current quota")
        elif scenario == "spend":
            err(429, "rate_limit_error", "You have reached your specified API usage limits (spend limit)")
        elif scenario == "slow":
            time.sleep(3)
            self.answer(anthropic, body, "hello from fake claude" if anthropic else "hello from fake openai", rid)
        elif scenario == "garbage":
            self.send(200, None, rid, raw=b"<html>oops</html>")
        else:
            self.answer(anthropic, body, "hello from fake claude" if anthropic else "hello from fake openai", rid)

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

if __name__ == "__main__":
    server = Server(("127.0.0.1", 0), Handler)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()
