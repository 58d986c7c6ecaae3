"""An OpenAI-compatible chat completions server that misbehaves on purpose, run as its own process.

    python tests/scripted_server.py PORT SCRIPT.json

A request whose prompt contains ``[[case:NAME]]`` follows ``script[NAME]``:

    {"faults": ["429", "500", "drop", "sleep:3"], "reply": "...", "always": "500"}

Attempt n of one prompt meets ``faults[n]`` while there are some (an HTTP status, a connection closed
without an answer, or an answer after a delay), then gets ``reply``; ``always`` is a fault forever.
``reply`` may be a dict from the requested language's name to the reply, and ``{field}`` in it
becomes the first field of the requested JSON schema. Any other request is answered from the prompt
itself: the first words of its document, as JSON with every field of the schema or as one line.

``GET /stats`` says how many requests came, which Authorization headers and response formats.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CASE = re.compile(r"\[\[case:(\w+)\]\]")
DOCUMENT = re.compile(r"(?:Passage|Text):\n(.*?)(?:\n\n|$)", re.DOTALL)
CANDIDATE = re.compile(r"^- ([^:\n]+):", re.MULTILINE)
LANGUAGE = re.compile(r"(?:Language: the query should be in|Language:) (\w+)")


class State:
    def __init__(self, script: dict):
        self.script = script
        self.attempts: dict[str, int] = {}
        self.requests = 0
        self.authorization: set[str] = set()
        self.response_formats: dict[str, int] = {}
        self.lock = threading.Lock()


def default_answer(prompt: str, schema: dict | None) -> str:
    """The first words of the document as one line, or under a schema: each enum's first value, the
    first listed candidate as the Character, that line for any other field."""
    match = DOCUMENT.search(prompt)
    words = re.findall(r"[A-Za-z]{3,}", CASE.sub("", match.group(1) if match else prompt))
    line = f"{' '.join(words[:3])}: {' '.join(words[3:9])}"
    if schema is None:
        return line
    answer = {}
    for name, spec in schema["properties"].items():
        candidate = CANDIDATE.search(prompt) if name == "Character" else None
        answer[name] = spec["enum"][0] if "enum" in spec else candidate.group(1) if candidate else line
    return json.dumps(answer)


def scripted_answer(case: dict, prompt: str, schema: dict | None) -> str:
    reply = case["reply"]
    if isinstance(reply, dict):
        language = LANGUAGE.search(prompt)
        reply = reply[language.group(1) if language else "English"]
    return reply.replace("{field}", next(iter(schema["properties"])) if schema else "Query")


class Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, *args) -> None:  # quiet: the tests read /stats
        pass

    def send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self.send_json(200, {"status": "ok"})
        elif self.path == "/stats":
            with self.state.lock:
                stats = {
                    "requests": self.state.requests,
                    "authorization": sorted(self.state.authorization),
                    "response_formats": self.state.response_formats,
                }
            self.send_json(200, stats)
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = "\n".join(m["content"] for m in body["messages"])
        response_format = body.get("response_format") or {}
        schema = response_format.get("json_schema", {}).get("schema")
        match = CASE.search(prompt)
        case = self.state.script.get(match.group(1), {}) if match else {}
        key = hashlib.sha256(json.dumps([body["messages"], body.get("seed")]).encode()).hexdigest()
        with self.state.lock:
            self.state.requests += 1
            self.state.authorization.add(self.headers.get("Authorization", ""))
            kind = response_format.get("type", "none")
            self.state.response_formats[kind] = self.state.response_formats.get(kind, 0) + 1
            attempt = self.state.attempts.get(key, 0)
            self.state.attempts[key] = attempt + 1
        faults = case.get("faults", [])
        fault = case.get("always") or (faults[attempt] if attempt < len(faults) else None)
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault and fault.startswith("sleep:"):
            time.sleep(float(fault.split(":")[1]))
        elif fault:
            self.send_json(int(fault), {"error": {"message": f"scripted {fault}", "type": "scripted"}})
            return
        content = scripted_answer(case, prompt, schema) if "reply" in case else default_answer(prompt, schema)
        self.send_json(
            200,
            {
                "id": f"chatcmpl-{key[:12]}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": len(content.split()),
                    "total_tokens": len(prompt.split()) + len(content.split()),
                },
            },
        )


def main() -> None:
    port, script_path = int(sys.argv[1]), sys.argv[2]
    with open(script_path) as handle:
        Handler.state = State(json.load(handle))
    ThreadingHTTPServer.request_queue_size = 256  # several shards' concurrent requests at once
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
