#!/usr/bin/env python3
"""A local HTTPS upstream for the `secret broker` tests: it answers with
what it received, so a test can see exactly what the broker sent.

    echo_upstream.py DIR

Makes a throwaway CA and a leaf for 127.0.0.1 in DIR with openssl (ca.pem,
leaf.pem, leaf.key) unless they exist, prints the port, then serves
HTTP/1.1 over TLS until killed:

- POST .../chat/completions: an OpenAI chat completion whose message
  content is the Authorization header it got (for SDK callers);
- GET .../stream: server-sent events, chunked: "data: first", then it waits
  (at most 20 s) for the file DIR/release to exist, then "data: second";
- anything else: JSON {method, path, headers, body_length}.
"""
import json
import os
import ssl
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

directory = sys.argv[1]


def run(*args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def make_certificates():
    if os.path.exists(os.path.join(directory, "leaf.pem")):
        return
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=broker test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "leaf.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body_length(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                self.rfile.read(size + 2)
                total += size
                if size == 0:
                    return total
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        return length

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def handle_any(self):
        length = self.body_length()
        if self.path.endswith("/chat/completions"):
            return self.reply(200, {
                "id": "chatcmpl-echo", "object": "chat.completion", "created": 0,
                "model": "echo",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": self.headers.get("Authorization", "")}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            })
        if self.path.split("?")[0].endswith("/hash"):
            # What arrived, without echoing it: for the proxy tests, whose
            # proxy masks an echoed value in responses.
            import hashlib
            auth = self.headers.get("Authorization", "")
            query = self.path.split("?", 1)[1] if "?" in self.path else ""
            return self.reply(200, {
                "authorization_sha256": hashlib.sha256(auth.encode()).hexdigest(),
                "query_sha256": hashlib.sha256(query.encode()).hexdigest(),
            })
        if self.path.split("?")[0].endswith("/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.chunk(b"data: first\n\n")
            release = os.path.join(directory, "release")
            deadline = time.time() + 20
            while not os.path.exists(release) and time.time() < deadline:
                time.sleep(0.01)
            self.chunk(b"data: second\n\n")
            self.chunk(b"")
            return
        self.reply(200, {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_length": length,
        })

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any


make_certificates()
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(os.path.join(directory, "leaf.pem"), os.path.join(directory, "leaf.key"))
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
