#!/usr/bin/env python3
"""Counts the requests a worker sends: a loopback HTTP/1.1 forwarder. Usage: count_proxy.py PORT_FILE UPSTREAM
GET /__count returns the number of requests forwarded so far (not counted itself). With a third argument LOG,
each request is appended to LOG as "start end METHOD path status" (epoch seconds), for the per-stage breakdown."""
import http.client, http.server, os, socketserver, sys, threading, time, urllib.parse

count = 0
lock = threading.Lock()
upstream = urllib.parse.urlparse(sys.argv[2])
local = threading.local()
log = open(sys.argv[3], "a", buffering=1) if len(sys.argv) > 3 else None

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def forward(self):
        global count
        if self.path == "/__count":
            body = str(count).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body); return
        with lock:
            count += 1
        started = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "accept-encoding")}
        try:
            local.conn.request(self.command, self.path, body=body, headers=headers)
            resp = local.conn.getresponse()
            data = resp.read()
        except Exception:
            local.conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
            local.conn.request(self.command, self.path, body=body, headers=headers)
            resp = local.conn.getresponse(); data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if log:
            with lock: log.write(f"{started:.4f} {time.time():.4f} {self.command} {self.path.split('?')[0]} {resp.status}\n")
    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = forward

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f: f.write(str(server.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
