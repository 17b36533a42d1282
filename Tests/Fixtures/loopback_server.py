#!/usr/bin/env python3
"""Loopback HTTP/1.1 keep-alive server for the HTTP client's tests (127.0.0.1 only).

Usage: loopback_server.py PORT_FILE [--tls CERT KEY] [--blackhole]
Writes the bound port to PORT_FILE. Routes:
  GET  /hello                 200 "hello"
  GET  /conns                 200 number of TCP connections accepted so far
  POST /echo                  200 the request body; X-Seen-Auth echoes the Authorization header's scheme
  GET  /slow?ms=N             sleeps N ms, then 200 (POST too: a slow webhook receiver)
  GET  /status/N              status N; ?retry_after=V adds Retry-After: V; ?fail_times=K answers N only K times
  GET  /count/NAME            how many times /status was hit with ?name=NAME
  GET  /big?bytes=N           N bytes of 'a'
  GET  /binary                256 bytes 0x00..0xff (not UTF-8)
  GET  /api/csrf-token        a CSRF token; POST /api/flows/ answers 403 "Invalid CSRF token" without it
  GET  /gzip                  a gzip-encoded body (when the client accepts it)
  POST /reset-once/NAME       counted as /count/NAME; the first one is answered with a connection reset (no bytes)
--blackhole: listen(0) and never accept, so connects time out once the queue is full.
"""
import gzip, http.server, socket, socketserver, ssl, sys, threading, time, urllib.parse

state = {"conns": 0, "hits": {}}
lock = threading.Lock()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        with lock:
            state["conns"] += 1

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        p = url.path
        if p == "/hello":
            self.reply(200, b"hello", {"Content-Type": "text/plain"})
        elif p == "/conns":
            with lock:
                self.reply(200, str(state["conns"]).encode())
        elif p == "/slow":
            time.sleep(int(q.get("ms", "1000")) / 1000)
            self.reply(200, b"slow")
        elif p.startswith("/status/"):
            code = int(p.split("/")[2])
            name = q.get("name", "default")
            with lock:
                state["hits"][name] = state["hits"].get(name, 0) + 1
                n = state["hits"][name]
            if "fail_times" in q and n > int(q["fail_times"]):
                self.reply(200, b"recovered")
                return
            headers = {}
            if "retry_after" in q:
                headers["Retry-After"] = q["retry_after"]
            self.reply(code, b'{"detail":"status %d"}' % code, headers)
        elif p.startswith("/count/"):
            with lock:
                self.reply(200, str(state["hits"].get(p.split("/")[2], 0)).encode())
        elif p == "/big":
            self.reply(200, b"a" * int(q.get("bytes", "1048576")))
        elif p == "/api/csrf-token":
            with lock:
                state["hits"]["csrf-token"] = state["hits"].get("csrf-token", 0) + 1
            self.reply(200, b'{"token":"tok-1","expiration":"2099-01-01T00:00:00Z"}', {"Content-Type": "application/json"})
        elif p == "/binary":
            self.reply(200, bytes(range(256)), {"Content-Type": "application/octet-stream"})
        elif p == "/gzip":
            body = b"compressed " * 100
            if "gzip" in (self.headers.get("Accept-Encoding") or ""):
                self.reply(200, gzip.compress(body), {"Content-Encoding": "gzip"})
            else:
                self.reply(200, body)
        else:
            self.reply(404, b"not found")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        auth = (self.headers.get("Authorization") or "none").split(" ")[0]
        if self.path == "/api/flows/":
            # Like a Prefect server with CSRF protection on.
            if self.headers.get("Prefect-Csrf-Token") == "tok-1" and self.headers.get("Prefect-Csrf-Client"):
                self.reply(201, b'{"id":"f-1","name":"csrf-flow"}', {"Content-Type": "application/json"})
            else:
                self.reply(403, b'{"detail":"Invalid CSRF token"}', {"Content-Type": "application/json"})
        elif self.path == "/echo":
            self.reply(200, body, {"X-Seen-Auth": auth, "X-Seen-Method": self.command})
        elif self.path.startswith("/reset-once/"):
            name = self.path.split("/")[2]
            with lock:
                state["hits"][name] = state["hits"].get(name, 0) + 1
                n = state["hits"][name]
            if n == 1:
                # What a lost answer looks like: the request arrived, the connection is reset before any byte of reply.
                import struct
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            self.reply(200, b"again")
        elif self.path.startswith("/slow"):
            # A slow webhook receiver: answers after ?ms=N.
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
            time.sleep(int(q.get("ms", "1000")) / 1000)
            self.reply(200, b"slow")
        else:
            self.reply(404, b"not found")

    do_PATCH = do_POST
    do_PUT = do_POST

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

def main():
    port_file = sys.argv[1]
    args = sys.argv[2:]
    if "--blackhole" in args:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        # Fill the accept queue so that later SYNs are dropped.
        fillers = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", s.getsockname()[1]))
            except BlockingIOError:
                pass
            fillers.append(c)
        with open(port_file, "w") as f:
            f.write(str(s.getsockname()[1]))
        while True:
            time.sleep(3600)
    server = Server(("127.0.0.1", 0), Handler)
    if "--tls" in args:
        i = args.index("--tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args[i + 1], args[i + 2])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()

if __name__ == "__main__":
    main()
