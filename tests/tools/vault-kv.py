#!/usr/bin/env python3
"""vault-kv: a small local HTTP server that answers the HashiCorp Vault /
OpenBao KV version 2 read API, for the connection registry tests.

usage: vault-kv.py SECRETS_JSON TOKEN PORT_FILE [LOG_FILE]

TOKEN given as @FILE is read from FILE, so that it is not on the command
line for ps to show.

SECRETS_JSON maps "<mount>/<path>" to the secret's data object, for example
{"secret/dpone/connections/mssql_dwh": {"url": "mssql://..."}}.
GET /v1/<mount>/data/<path> with header X-Vault-Token: TOKEN answers
{"data": {"data": {...}, "metadata": {"version": 1}}}; a wrong token gets
403, an unknown path 404, as Vault does. It listens on 127.0.0.1, port 0,
and writes the port it got to PORT_FILE. LOG_FILE gets one line per request
path (never a header).
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

secrets_path, token, port_file = sys.argv[1:4]
if token.startswith("@"):
    with open(token[1:]) as f:
        token = f.read().strip()
log_file = sys.argv[4] if len(sys.argv) > 4 else None
with open(secrets_path) as f:
    secrets = json.load(f)


class KV2(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if log_file:
            with open(log_file, "a") as log:
                log.write(self.path + "\n")
        if self.headers.get("X-Vault-Token") != token:
            return self.answer(403, {"errors": ["permission denied"]})
        parts = self.path.split("/")
        # /v1/<mount>/data/<path...>
        if len(parts) < 5 or parts[1] != "v1" or parts[3] != "data":
            return self.answer(404, {"errors": []})
        key = parts[2] + "/" + "/".join(parts[4:])
        if key not in secrets:
            return self.answer(404, {"errors": []})
        self.answer(200, {"data": {"data": secrets[key], "metadata": {"version": 1}}})

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), KV2)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
