#!/usr/bin/env python3
"""A local stand-in for the Anthropic Messages API and OpenAI Chat Completions (127.0.0.1 only).

Usage: fake_llm_server.py PORT_FILE
The first path segment picks a scenario; the rest is the API path:
  /<scenario>/v1/messages          Anthropic      /<scenario>/chat/completions   OpenAI
Scenarios: ok, ratelimit1 (429 + retry-after: 1 once), overloaded1 (529 once), error500x1 (500 once),
always503, bad400, unauth401, forbid403, quota (OpenAI 429 insufficient_quota), spend (Anthropic 429 spend
limit), slow (sleeps 3 s), garbage (200 with non-JSON), ratelimitms (429 + retry-after-ms: 300 once).
GET /requests returns every request seen: [{scenario, path, headers, body}]; GET /reset clears it.
Scenario "scripted" answers each pipeline stage with the text POSTed to /answers as {"design": "...",
"implement": "...", "test": "...", "verify": "..."}; the stage is read from the prompt's first line. A list
gives one answer per call of that stage, the last one repeated.
"""
import http.server, json, os, socketserver, sys, threading, time

seen = []
counts = {}
answers = {}
served = {}
STAGES = {"software architect": "design", "implementer": "implement", "test engineer": "test", "verifier": "verify"}

def stage_of(body):
    text = json.dumps(body.get("messages", []))
    for words, stage in STAGES.items():
        if "You are the " + words in text:
            return stage
    return None
lock = threading.Lock()

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
                answers.clear(); answers.update(body); served.clear()
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
        if scenario == "scripted":
            stage = stage_of(body) or ""
            with lock:
                served[stage] = served.get(stage, 0) + 1
                k = served[stage]
            text = answers.get(stage, "no scripted answer for this prompt")
            if isinstance(text, list):
                text = text[min(k, len(text)) - 1]
            if anthropic:
                ok["content"][0]["text"] = text
            else:
                ok["choices"][0]["message"]["content"] = text
            self.send(200, ok, rid)
        elif scenario == "ok":
            self.send(200, ok, rid)
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
            self.send(200, ok, rid)
        elif scenario == "garbage":
            self.send(200, None, rid, raw=b"<html>oops</html>")
        else:
            self.send(200, ok, rid)

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

if __name__ == "__main__":
    server = Server(("127.0.0.1", 0), Handler)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()
