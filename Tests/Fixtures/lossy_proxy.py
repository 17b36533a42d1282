#!/usr/bin/env python3
"""A loopback proxy in front of the real Prefect server that loses answers and makes races happen on cue.

Usage: lossy_proxy.py PORT_FILE UPSTREAM [--drop-answer KIND:TYPE[:COUNT]]... [--before TYPE:ACTION]... [--events FILE]
Forwards every request to UPSTREAM (http://127.0.0.1:PORT, the path kept) and writes the bound port to PORT_FILE.
  --drop-answer flow:PENDING:1   the first POST .../flow_runs/<id>/set_state proposing PENDING reaches the server
                                 (which commits it), and its answer is lost: the client's socket is reset instead.
                                 KIND is flow or task; COUNT defaults to 1.
  --before TYPE:ACTION           the first time a flow run proposes TYPE (PAUSED counts only with a pause_key: a gate
                                 firing), ACTION happens on the server first: cancel sets it CANCELLING (the UI's
                                 Cancel), pause sets it Suspended as the UI's Pause dialog does.
  --refuse-get REGEX[:COUNT]     the first COUNT (default 1) GETs whose path matches REGEX are answered 403 without
                                 reaching the server (a read that fails and is not retried).
Each drop and action is appended to --events FILE as one JSON line, so a test can check it happened.
"""
import datetime, http.client, http.server, json, re, socket, socketserver, struct, sys, threading, urllib.parse

port_file, upstream = sys.argv[1], urllib.parse.urlparse(sys.argv[2])
drops, before, events_path, refusals = [], {}, None, []
args = sys.argv[3:]
while args:
    flag, value, args = args[0], args[1], args[2:]
    if flag == "--drop-answer":
        parts = value.split(":")
        drops.append({"kind": parts[0], "type": parts[1], "left": int(parts[2]) if len(parts) > 2 else 1})
    elif flag == "--before":
        proposed, action = value.split(":")
        before[proposed] = action
    elif flag == "--refuse-get":
        pattern, _, count = value.rpartition(":") if re.search(r":[0-9]+$", value) else (value, "", "1")
        refusals.append({"pattern": re.compile(pattern), "left": int(count)})
    elif flag == "--events":
        events_path = value
    else:
        sys.exit(f"unknown flag {flag}")
lock = threading.Lock()
fired = set()
SET_STATE = re.compile(r"^(.*)/(flow_runs|task_runs)/([0-9a-f-]{36})/set_state$")


def event(record):
    if events_path:
        with lock, open(events_path, "a") as f:
            f.write(json.dumps(record) + "\n")


def upstream_call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def force_state(prefix, run_id, state):
    body = json.dumps({"state": state, "force": True}).encode()
    status, _, text = upstream_call("POST", f"{prefix}/flow_runs/{run_id}/set_state", body, {"Content-Type": "application/json"})
    return status, json.loads(text or b"null")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "GET":
            path = urllib.parse.urlparse(self.path).path
            with lock:
                refusal = next((r for r in refusals if r["left"] > 0 and r["pattern"].search(path)), None)
                if refusal:
                    refusal["left"] -= 1
            if refusal:
                event({"refused": path})
                text = json.dumps({"detail": "refused by the test proxy"}).encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)
                return
        drop = self.before(body)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "keep-alive")}
        status, response_headers, text = upstream_call(self.command, self.path, body, headers)
        if drop:
            event({"dropped": drop, "path": self.path, "status": status})
            # The server committed the proposal; its answer never arrives (a reset, as a dropped connection gives).
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(status)
        for k, v in response_headers:
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "keep-alive"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def before(self, body):
        """Actions due before this request reaches the server; returns the drop rule that applies, if any."""
        match = SET_STATE.match(urllib.parse.urlparse(self.path).path)
        if self.command != "POST" or not match or not body:
            return None
        prefix, kind, run_id = match.group(1), "flow" if match.group(2) == "flow_runs" else "task", match.group(3)
        state = (json.loads(body).get("state") or {})
        proposed, details = state.get("type"), state.get("state_details") or {}
        action = before.get(proposed) if kind == "flow" else None
        if action and (proposed != "PAUSED" or details.get("pause_key")) and (proposed, run_id) not in fired:
            fired.add((proposed, run_id))
            if action == "cancel":
                result = force_state(prefix, run_id, {"type": "CANCELLING", "name": "Cancelling"})
            else:
                # What the UI's Pause dialog sends (PauseFlowRunDialog): Suspended, rescheduled, forced, 5 min timeout.
                timeout = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)).isoformat()
                result = force_state(prefix, run_id, {"type": "PAUSED", "name": "Suspended", "state_details": {"pause_timeout": timeout, "pause_reschedule": True}})
            event({"before": proposed, "action": action, "run": run_id, "result": result[1].get("status") if isinstance(result[1], dict) else result[0]})
        with lock:
            for rule in drops:
                if rule["kind"] == kind and rule["type"] == proposed and rule["left"] > 0:
                    rule["left"] -= 1
                    return f"{kind}:{proposed}"
        return None

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = forward


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.replace(port_file + ".tmp", port_file)
server.serve_forever()
