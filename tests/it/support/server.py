"""Test helper for ovlock's server tests: holds the data directory's flock as
OpenViking 0.5.2 does, and listens on loopback, answering as MODE says.

    python3 server.py MODE TAG

MODE is one of:
  ok          answer like a live openviking-server 0.5.2: /health, and
              /api/v1/observer/system and /api/v1/tasks with {"status":"ok",...};
  unhealthy   the same, but the system observer says is_healthy false and
              names an error (/health says healthy, as 0.5.2's always does);
  key         want X-API-Key (or Authorization: Bearer) equal to $SERVER_KEY,
              else 401; its /health says auth_mode api_key;
  silent      accept connections and never answer;
  random      send 4 KiB of random bytes, then close;
  huge        announce a 10 MB body and send it as fast as it is read;
  drip        send one byte a second, forever;
  html        answer 200 with an HTML page;
  redirect    answer 302 to another host;
  nolisten    listen on nothing at all.

TAG only shapes the command line (one containing "openviking" makes it look
like a server). The lock file's path travels in $HOLDER_PATH; $SERVER_HOST
is the address to bind (default 127.0.0.1; "0.0.0.0" or "::" for wildcards).
Every request line it reads is appended to $SERVER_LOG, headers included, so a
test can see what ovlock sent.

When listening it prints "ready <pid> <port>" (port 0 for nolisten), then
blocks until stdin reaches EOF or it is killed.
"""

import fcntl
import json
import os
import socket
import sys
import threading
import time


def health(mode):
    return {
        "status": "ok",
        "healthy": True,
        "version": "0.5.2",
        "auth_mode": "api_key" if mode == "key" else "dev",
    }


def respond(conn, status, body, ctype="application/json", extra=""):
    data = body.encode() if isinstance(body, str) else body
    head = "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n" % (
        status, ctype, len(data), extra)
    conn.sendall(head.encode() + data)


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1")


def serve(conn, mode):
    try:
        if mode == "silent":
            time.sleep(3600)
            return
        request = read_request(conn)
        log = os.environ.get("SERVER_LOG")
        if log:
            with open(log, "a") as f:
                f.write(request)
        path = request.split(" ")[1] if request.count(" ") >= 1 else "/"
        if mode == "random":
            conn.sendall(os.urandom(4096))
        elif mode == "huge":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 10485760\r\n\r\n")
            chunk = b"0" * 65536
            for _ in range(160):
                conn.sendall(chunk)
        elif mode == "drip":
            for byte in b"HTTP/1.1 200 OK\r\n" * 1000:
                conn.sendall(bytes([byte]))
                time.sleep(1)
        elif mode == "html":
            respond(conn, "200 OK", "<!DOCTYPE html><html><body>It works!</body></html>", "text/html")
        elif mode == "redirect":
            respond(conn, "302 Found", "", extra="Location: http://192.0.2.1/health\r\n")
        else:
            if mode == "key":
                key = os.environ["SERVER_KEY"]
                lines = request.lower().split("\r\n")
                if ("x-api-key: " + key.lower()) not in lines and \
                        ("authorization: bearer " + key.lower()) not in lines:
                    respond(conn, "401 Unauthorized", json.dumps(
                        {"status": "error", "error": {"code": "UNAUTHENTICATED"}}))
                    return
            if path == "/health":
                respond(conn, "200 OK", json.dumps(health(mode)))
            elif path == "/api/v1/observer/system":
                errors = ["models has errors"] if mode == "unhealthy" else []
                respond(conn, "200 OK", json.dumps(
                    {"status": "ok", "result": {"is_healthy": not errors, "errors": errors}}))
            elif path == "/api/v1/tasks":
                respond(conn, "200 OK", json.dumps({"status": "ok", "result": []}))
            else:
                respond(conn, "404 Not Found", json.dumps({"status": "error"}))
    except OSError:
        pass
    finally:
        conn.close()


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: server.py MODE TAG\n")
        return 2
    mode = sys.argv[1]
    fd = os.open(os.environ["HOLDER_PATH"], os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    port = 0
    if mode != "nolisten":
        host = os.environ.get("SERVER_HOST", "127.0.0.1")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(64)
        port = listener.getsockname()[1]

        def accept():
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=serve, args=(conn, mode), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
    sys.stdout.write("ready %d %d\n" % (os.getpid(), port))
    sys.stdout.flush()
    sys.stdin.buffer.read()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
