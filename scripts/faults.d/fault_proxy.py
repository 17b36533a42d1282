#!/usr/bin/env python3
"""A fault-injecting proxy on loopback in front of the real Prefect server.
Usage: fault_proxy.py PORT_FILE UPSTREAM — every 5th request answers 503; every 9th poll/heartbeat/filter
answers 500, every 13th answers 200 with garbage. GET /__stats returns the counts."""
import http.client, http.server, json, os, socketserver, sys, threading, urllib.parse

up = urllib.parse.urlparse(sys.argv[2]); lock = threading.Lock(); stats = {"total": 0, "503": 0, "500": 0, "garbage": 0}
local = threading.local()

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"; disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def reply(self, code, data, ctype="application/json"):
        self.send_response(code); self.send_header("Content-Type", ctype); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def go(self):
        if self.path == "/__stats": return self.reply(200, json.dumps(stats).encode())
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        with lock:
            stats["total"] += 1; n = stats["total"]
        loop = any(k in self.path for k in ("get_scheduled_flow_runs", "heartbeat", "/flow_runs/filter"))
        if n % 5 == 0:
            stats["503"] += 1; return self.reply(503, b'{"exception_message":"Service Unavailable"}')
        if loop and n % 9 == 0:
            stats["500"] += 1; return self.reply(500, b'{"exception_message":"Internal Server Error"}')
        if loop and n % 13 == 0:
            stats["garbage"] += 1; return self.reply(200, b"<html>garbage</html>", "text/html")
        if not hasattr(local, "c"): local.c = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "accept-encoding")}
        try:
            local.c.request(self.command, self.path, body=body, headers=hdrs); r = local.c.getresponse(); data = r.read()
        except Exception:
            local.c = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
            return self.reply(502, b'{"exception_message":"Bad Gateway"}')
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"): self.send_header(k, v)
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = go

class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
s = S(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1])); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
