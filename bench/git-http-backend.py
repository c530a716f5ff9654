"""A loopback smart-HTTP git server for the benchmarks: `git http-backend` as CGI behind basic
auth (any user, the token as password), over the bare repositories under a root folder.

Usage: python3 bench/git-http-backend.py ROOT TOKEN PORTFILE
Writes the port it listens on into PORTFILE, then serves until killed. With REQUEST_LOG set,
appends one line per request (`METHOD PATH STATUS`, unauthorized ones included) to that file.
"""

import base64
import http.server
import os
import subprocess
import sys

ROOT, TOKEN, PORTFILE = sys.argv[1], sys.argv[2], sys.argv[3]
REQUEST_LOG = os.environ.get("REQUEST_LOG")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def log_request(self, code="-", size="-"):
        if REQUEST_LOG:
            with open(REQUEST_LOG, "a", encoding="utf-8") as f:
                f.write(f"{self.command} {self.path} {code}\n")

    def authorized(self):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user_pass = base64.b64decode(header[6:]).decode(errors="replace")
        return user_pass.partition(":")[2] == TOKEN

    def read_chunked(self):
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                self.rfile.readline()
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    def serve(self):
        if not self.authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self.read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "GIT_PROJECT_ROOT": ROOT,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "bench",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        out = subprocess.run(
            ["git", "-c", "http.receivepack=true", "http-backend"],
            input=body,
            env=env,
            capture_output=True,
            check=False,
        ).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.split(b"\r\n"):
            name, _, value = line.decode().partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)

    do_GET = serve
    do_POST = serve


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORTFILE, "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
