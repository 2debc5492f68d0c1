// A local HTTPS upstream that speaks HTTP/2 (and HTTP/1.1 by ALPN), for
// the `exec --proxy` HTTP/2 tests:
//
//     node h2_upstream.js DIR
//
// Serves with DIR/leaf.pem and DIR/leaf.key (made by echo_upstream.py),
// prints its port, then answers until killed:
//
// - GET .../stream: "data: first" (and the query's `tail=`, if any), then
//   (once DIR/release exists, at most 20 s later) "data: second", as two
//   separate DATA frames or chunks;
// - an HTTP/1.1 request with `Upgrade: echo`: 101, then every byte it
//   gets is sent back; to .../echo-auth, the 101 also carries the
//   Authorization it got (`x-echo`) and its SHA-256 (`x-authorization-sha256`),
//   and the stream starts with "auth: <Authorization>\n";
// - anything else: JSON {http_version, alpn, authorization_sha256, headers}.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const http2 = require("http2");
const path = require("path");

const dir = process.argv[2];
const server = http2.createSecureServer({
  key: fs.readFileSync(path.join(dir, "leaf.key")),
  cert: fs.readFileSync(path.join(dir, "leaf.pem")),
  allowHTTP1: true,
});

server.on("request", (req, res) => {
  req.resume();
  req.on("end", () => {
    if (req.url.split("?")[0].endsWith("/stream")) {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const tail = new URL(req.url, "https://x").searchParams.get("tail") || "";
      res.write("data: first\n\n" + tail);
      const release = path.join(dir, "release");
      const deadline = Date.now() + 20000;
      const wait = () => {
        if (fs.existsSync(release) || Date.now() > deadline) {
          res.end("data: second\n\n");
        } else {
          setTimeout(wait, 10);
        }
      };
      wait();
      return;
    }
    const auth = req.headers["authorization"] || "";
    const body = JSON.stringify({
      http_version: req.httpVersion,
      alpn: req.socket.alpnProtocol || null,
      authorization_sha256: crypto.createHash("sha256").update(auth).digest("hex"),
      headers: req.headers,
    });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
  });
});

server.on("upgrade", (req, socket) => {
  const auth = req.headers["authorization"] || "";
  const echo = req.url.endsWith("/echo-auth");
  const extra = echo
    ? `x-echo: ${auth}\r\nx-authorization-sha256: ${crypto.createHash("sha256").update(auth).digest("hex")}\r\n`
    : "";
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n${extra}\r\n`,
  );
  if (echo) {
    socket.write(`auth: ${auth}\n`);
  }
  socket.pipe(socket);
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});
