"""A scripted OpenAI-compatible chat server on 127.0.0.1, for fault tests and the throughput benchmark.

    with FaultServer(latency=0.2, faults=["429", "500", "timeout", "malformed"]) as server:
        ...  # server.url is the base URL; server.log records every request

Each request takes the next fault from `faults` (none left: answer normally after `latency`). Faults:
any status such as "400", "401", "404", "408", "409", "413", "422", "429", "500", "502", "503", "504"
(that status with an OpenAI-style error body), "retry_after:<s>" (429 with `Retry-After: <s>` seconds),
"retry_after_date:<s>" (429, Retry-After as the HTTP date <s> seconds ahead), "reset" (the connection
is reset, no response), "timeout" (hang for `hang_s`, longer than the client waits), "malformed" (200
with a body that is not JSON), "no_choices" (200, JSON without `choices`), "empty" (200, empty message
text), "length" (200, a reply cut off at max_tokens: finish_reason "length"). Every request is logged with the
hash of its messages, so a test can tell a prompt sent twice.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_REPLY = "Step one: read the question. Step two: weigh each clue. Step three: conclude."


def prompt_hash(messages: Sequence[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(list(messages), sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Logged:
    prompt: str  # prompt_hash of the request's messages
    fault: str  # "ok" when answered normally
    authorization: str
    started: float


class FaultServer:
    def __init__(self, latency: float = 0.0, faults: Iterable[str] = (), hang_s: float = 3.0,
                 reply: Callable[[list[dict[str, str]]], str] | None = None) -> None:
        self.latency = latency
        self.hang_s = hang_s
        self.faults: deque[str] = deque(faults)
        self.reply = reply or (lambda messages: DEFAULT_REPLY)
        self.log: list[Logged] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._http = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    def answered(self) -> Counter[str]:
        """Prompts answered with a normal reply, and how often."""
        with self._lock:
            return Counter(entry.prompt for entry in self.log if entry.fault == "ok")

    def _next_fault(self, messages: list[dict[str, str]]) -> str:
        with self._lock:
            fault = self.faults.popleft() if self.faults else "ok"
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return fault

    def _record(self, entry: Logged) -> None:
        with self._lock:
            self._in_flight -= 1
            self.log.append(entry)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops connections that a burst of 16+ clients opens


def _completion(model: str, text: str, messages: list[dict[str, str]], finish: str = "stop") -> dict[str, Any]:
    prompt_tokens = sum(len(m.get("content", "")) for m in messages) // 4
    return {"id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text) // 4,
                      "total_tokens": prompt_tokens + len(text) // 4}}


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200, json.dumps({"object": "list", "data": [{"id": "fault", "object": "model"}]}).encode())

        def do_POST(self) -> None:
            started = time.time()
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            messages = request.get("messages", [])
            fault = server._next_fault(messages)
            try:
                self._answer(fault, request, messages)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout fault, or a killed build)
            finally:
                server._record(Logged(prompt_hash(messages), fault, self.headers.get("Authorization", ""), started))

        def _error(self, status: int, headers: dict[str, str] | None = None) -> None:
            error = {"error": {"message": f"injected {status}", "type": "fault", "code": str(status)}}
            self._send(status, json.dumps(error).encode(), headers=headers)

        def _reset(self) -> None:
            """Close with SO_LINGER 0: the client sees a TCP reset, not a clean end of stream."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def _answer(self, fault: str, request: dict[str, Any], messages: list[dict[str, str]]) -> None:
            kind, _, arg = fault.partition(":")
            if fault.isdigit():
                self._error(int(fault))
            elif kind == "retry_after":
                self._error(429, {"Retry-After": arg})
            elif kind == "retry_after_date":
                self._error(429, {"Retry-After": email.utils.formatdate(time.time() + float(arg), usegmt=True)})
            elif fault == "reset":
                self._reset()
            else:
                self._reply(fault, request, messages)

        def _reply(self, fault: str, request: dict[str, Any], messages: list[dict[str, str]]) -> None:
            time.sleep(server.hang_s if fault == "timeout" else server.latency)
            if fault == "malformed":
                self._send(200, b'{"id": "chatcmpl-broken", "choices": [')
            elif fault == "no_choices":
                self._send(200, json.dumps({"id": "chatcmpl-odd", "object": "chat.completion"}).encode())
            else:
                text = "" if fault == "empty" else server.reply(messages)
                finish = "length" if fault == "length" else "stop"
                self._send(200, json.dumps(_completion(request.get("model", ""), text, messages, finish)).encode())

    return Handler


def main() -> None:
    """Serve in a process of its own (the benchmark: server threads must not share the client's GIL)."""
    import argparse

    parser = argparse.ArgumentParser(description="a loopback OpenAI-compatible server with injected latency")
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    with FaultServer(latency=args.latency) as server:
        print(server.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
