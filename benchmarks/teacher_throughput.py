"""Teacher throughput against a latency-injected loopback server, as a fraction of the ideal.

    python benchmarks/teacher_throughput.py [--latency 0.2] [--concurrency 1 4 16] [--rounds 5]

With every request taking `latency` seconds on the server, `concurrency` requests in flight can at
best finish concurrency / latency requests per second; the table prints the measured rate and its
ratio to that ideal (the issue's aim: >= 0.8). Each request is a new prompt through the full client
path (cache lookup, semaphore, openai client, reply committed to SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faco.data.teacher import ReplyCache, Teacher, TeacherConfig, true_messages

FAULT_SERVER = Path(__file__).resolve().parents[1] / "unit_tests" / "fault_server.py"


async def measure(url: str, cache: ReplyCache, concurrency: int, requests: int, tag: str) -> float:
    config = TeacherConfig(base_url=url, model="bench", concurrency=concurrency, timeout_s=30)
    async with Teacher(config, cache) as teacher:
        await teacher.ask(true_messages(f"warm-up {tag}", ("a", "b"), "a", None))  # connection set up
        start = time.perf_counter()
        await asyncio.gather(*(teacher.ask(true_messages(f"{tag} question {i}?", ("a", "b"), "a", None))
                               for i in range(requests)))
        return requests / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=5, help="requests per run = rounds x concurrency")
    args = parser.parse_args()
    print(f"latency {args.latency * 1000:.0f} ms per request, {args.rounds} rounds of requests per run")
    print(f"{'concurrency':>11} {'requests':>8} {'req/s':>8} {'ideal':>8} {'ratio':>6}")
    # the server runs in its own process: its threads must not share the client's GIL
    server = subprocess.Popen([sys.executable, str(FAULT_SERVER), "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as scratch:
            cache = ReplyCache(Path(scratch) / "replies.sqlite")
            for concurrency in args.concurrency:
                requests = args.rounds * concurrency
                rate = asyncio.run(measure(url, cache, concurrency, requests, f"c{concurrency}"))
                ideal = concurrency / args.latency
                print(f"{concurrency:>11} {requests:>8} {rate:>8.1f} {ideal:>8.1f} {rate / ideal:>6.2f}")
            cache.close()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
