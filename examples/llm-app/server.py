#!/usr/bin/env python3
"""A tiny OpenAI-shaped chat model for the eval example: it knows the capitals in
capitals.json and follows one instruction of the prompt ("in one word"). Standard library only.

    python3 server.py [--port 18080] [--latency-ms 20]

POST /v1/chat/completions answers {"choices":[{"message":{"content":...}}],"usage":{...}};
GET / answers "ok" (the eval step waits for it).
"""
import argparse
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "capitals.json"), encoding="utf-8") as f:
    CAPITALS = json.load(f)


def answer(prompt):
    country = ""
    for line in prompt.splitlines():
        if line.lower().startswith("country:"):
            country = line.split(":", 1)[1].strip()
    capital = CAPITALS.get(country)
    if capital is None:
        return "I don't know."
    if "one word" in prompt.lower():
        return capital
    return f"The capital of {country} is {capital}."


class Handler(BaseHTTPRequestHandler):
    latency = 0.0

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"status": "ok"})

    def do_POST(self):
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": "not found"}})
            return
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length))
            prompt = body["messages"][-1]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            self._send(400, {"error": {"message": "expected {messages: [{role, content}]}"}})
            return
        time.sleep(self.latency)
        text = answer(prompt)
        self._send(200, {
            "id": "chatcmpl-example",
            "object": "chat.completion",
            "model": body.get("model", "capitals"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": len(prompt.split()),
                      "completion_tokens": len(text.split()),
                      "total_tokens": len(prompt.split()) + len(text.split())},
        })

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--latency-ms", type=float, default=0)
    args = parser.parse_args()
    Handler.latency = args.latency_ms / 1000
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
