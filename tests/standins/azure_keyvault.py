#!/usr/bin/env python3
"""A local HTTPS stand-in for Azure Key Vault and the Microsoft identity
platform's token endpoint, speaking their documented REST shapes, for the
tests of `azure-kv://` references (Azure itself cannot be reached here).

    azure_keyvault.py CERT KEY CONFIG.json

CONFIG: {"token": "...", "tenant": "...", "client_id": "...",
         "client_secret": "...", "scope": "...",
         "secrets": {"name": {"": "latest value", "version": "value"}}}
Prints the port, then serves until killed. GET /calls reports how many
tokens were issued.
"""
import json
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

cert, key, config_path = sys.argv[1:4]
config = json.load(open(config_path))
issued = {"count": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/calls":
            return self.reply(200, {"tokens_issued": issued["count"]})
        query = urllib.parse.parse_qs(url.query)
        if query.get("api-version") != ["7.4"]:
            return self.reply(400, {"error": {"code": "BadParameter", "message": "api-version missing"}})
        if self.headers.get("Authorization") != "Bearer " + config["token"]:
            return self.reply(401, {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}})
        parts = url.path.strip("/").split("/")
        if len(parts) not in (2, 3) or parts[0] != "secrets":
            return self.reply(404, {"error": {"code": "NotFound", "message": "no such route"}})
        name, version = parts[1], parts[2] if len(parts) == 3 else ""
        if name == "long-error":
            return self.reply(500, {"error": {"code": "InternalError", "message": "x" * 3000}})
        versions = config["secrets"].get(name)
        if versions is None or version not in versions:
            return self.reply(404, {"error": {"code": "SecretNotFound", "message": "A secret with (name/id) %s/%s was not found in this key vault." % (name, version)}})
        self.reply(200, {"value": versions[version], "id": "https://stand-in/secrets/%s/%s" % (name, version or "latest"), "attributes": {"enabled": True}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        field = lambda k: (form.get(k) or [""])[0]
        if self.path != "/%s/oauth2/v2.0/token" % config["tenant"]:
            return self.reply(404, {"error": "invalid_request", "error_description": "unknown tenant"})
        if field("grant_type") != "client_credentials" or field("client_id") != config["client_id"] or field("client_secret") != config["client_secret"]:
            return self.reply(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
        if field("scope") != config["scope"]:
            return self.reply(400, {"error": "invalid_scope", "error_description": "unexpected scope " + field("scope")})
        with lock:
            issued["count"] += 1
        self.reply(200, {"token_type": "Bearer", "expires_in": config.get("expires_in", 3599), "access_token": config["token"]})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
