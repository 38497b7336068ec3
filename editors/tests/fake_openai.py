#!/usr/bin/env python3
"""A stand-in for an OpenAI-compatible chat endpoint, for the editor tests' Explain checks.

POST /v1/chat/completions answers with an SSE stream of the pieces below, 150 ms apart, then
`finish_reason: stop`, usage and `data: [DONE]` (OpenAI's wire format). Prints the port it
listens on (127.0.0.1, chosen by the OS) as its first line, then serves until killed.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIECES = ["`fibonacci` returns ", "the n-th Fibonacci number ", "by recursion.\n\n", "- **Edge case**: n < 2 returns n."]
ANSWER = "".join(PIECES)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        if not self.path.endswith("/chat/completions") or not body.get("stream"):
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.end_headers()

        def event(obj):
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

        for piece in PIECES:
            event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            time.sleep(0.15)
        event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        event({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 20}})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--answer":
        print(ANSWER, end="")
        sys.exit(0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
