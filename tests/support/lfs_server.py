#!/usr/bin/env python3
"""A Git LFS server for the tests: the batch API (download only) and the basic transfer.

A stand-in for a forge's LFS endpoint (GitHub's, GitLab's), which the tests cannot reach. It
records every request it was sent, one JSON object per line in --log (method, path, whether it
carried an Authorization header and its value, the request body), so tests assert exactly what
the agent asked for.

  lfs_server.py --store DIR --port N --log FILE [--max-seconds S]

Objects are files named by their sha256 in --store. It answers POST <anything>/objects/batch and
GET /objects/<oid>, and exits by itself after --max-seconds (default 300).
"""
import argparse
import http.server
import json
import os
import re
import threading

OID = re.compile(r"^[0-9a-f]{64}$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--max-seconds", type=float, default=300)
    args = ap.parse_args()
    lock = threading.Lock()

    def record(handler, body):
        entry = {
            "method": handler.command,
            "path": handler.path,
            "authorization": handler.headers.get("Authorization"),
            "body": body,
        }
        with lock, open(args.log, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):  # the JSON log is the record
            pass

        def reply(self, code, body, ctype="application/vnd.git-lfs+json"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(min(n, 1 << 20))
            try:
                body = json.loads(raw)
            except ValueError:
                record(self, raw.decode("utf-8", "replace"))
                return self.reply(422, b'{"message":"bad json"}')
            record(self, body)
            if not self.path.endswith("/objects/batch") or body.get("operation") != "download":
                return self.reply(422, b'{"message":"download batches only"}')
            objects = []
            for o in body.get("objects", []):
                oid = str(o.get("oid", ""))
                path = os.path.join(args.store, oid)
                if OID.match(oid) and os.path.exists(path):
                    href = "http://127.0.0.1:%d/objects/%s" % (args.port, oid)
                    objects.append({"oid": oid, "size": o.get("size"), "authenticated": True,
                                    "actions": {"download": {"href": href}}})
                else:
                    objects.append({"oid": oid, "size": o.get("size"),
                                    "error": {"code": 404, "message": "Object does not exist"}})
            out = json.dumps({"transfer": "basic", "objects": objects}).encode()
            self.reply(200, out)

        def do_GET(self):
            record(self, None)
            oid = self.path.rsplit("/", 1)[-1]
            path = os.path.join(args.store, oid)
            if not self.path.startswith("/objects/") or not OID.match(oid) or \
                    not os.path.exists(path):
                return self.reply(404, b"not found", "text/plain")
            with open(path, "rb") as f:
                data = f.read()
            self.reply(200, data, "application/octet-stream")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Timer(args.max_seconds, server.shutdown).start()
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
