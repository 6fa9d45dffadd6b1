#!/usr/bin/env python3
"""A load client for the canary example: N workers, each on its own keep-alive connection,
send completions to one URL for a duration or until a stop file appears, then one line of
JSON is printed on stdout. Python 3.11 standard library only.

    python3 load.py --url http://127.0.0.1:8080/v1/completions --concurrency 8 --duration 3
    python3 load.py --url ... --stop-file /tmp/stop          # runs until /tmp/stop exists

Summary fields:
  total              requests finished: sum of by_status plus transport_errors
  by_status          {"200": n, "500": n, ...} HTTP answers by status code
  transport_errors   requests that got no HTTP answer (refused, reset, timeout, bad answer);
                     each is counted, the connection is dropped and a new one opened
  transport_error_kinds  {"ConnectionRefusedError": n, ...}
  versions           {"3": n, ...} from the X-Model-Version header (else the JSON body's
                     model_version), over every HTTP answer; "unknown" when neither is there
  p50_ms, p95_ms, p99_ms, mean_ms, max_ms   latency of HTTP answers (null if none)
  duration_s, rps    wall time of the run and total / duration_s

Exit status: 0 after printing the summary (whatever the answers were), 2 on bad arguments.
SIGTERM and SIGINT end the run early; the summary is still printed.
"""
import argparse
import http.client
import json
import os
import random
import signal
import sys
import threading
import time
from urllib.parse import quote, urlsplit

kReservoir = 200_000        # latency samples kept per worker; beyond it, reservoir sampling
kBackoffS = (0.01, 0.25)    # wait after a transport error: first, cap (doubles each time)

kPromptWords = {
    "en": "what is the capital of france and why is it known for its art".split(),
    "fr": "quelle est la capitale de la france et pourquoi est elle connue".split(),
    "de": "was ist die hauptstadt von frankreich und warum ist sie bekannt".split(),
    "es": "cuál es la capital de francia y por qué es conocida por el arte".split(),
}
kLanguageMix = (("en", 0.7), ("fr", 0.1), ("de", 0.1), ("es", 0.1))


def random_prompt(rng):
    """A prompt of 4..40 words in a language drawn from kLanguageMix."""
    x, lang = rng.random(), "en"
    for name, weight in kLanguageMix:
        if x < weight:
            lang = name
            break
        x -= weight
    words = kPromptWords[lang]
    return " ".join(rng.choice(words) for _ in range(rng.randint(4, 40)))


class Worker(threading.Thread):
    def __init__(self, index, args, url, stop):
        super().__init__(daemon=True, name=f"load-{index}")
        self.args, self.url, self.stop = args, url, stop
        self.rng = random.Random(None if args.seed is None else args.seed * 1000 + index)
        self.by_status, self.errors, self.versions = {}, {}, {}
        self.latencies, self.seen = [], 0
        self.conn = None

    def connect(self):
        cls = http.client.HTTPSConnection if self.url.scheme == "https" else \
            http.client.HTTPConnection
        return cls(self.url.hostname, self.url.port, timeout=self.args.timeout)

    def request(self):
        """One request on the kept-alive connection; returns (status, headers, body)."""
        prompt = self.args.prompt if self.args.prompt is not None else random_prompt(self.rng)
        path = self.url.path or "/"
        if self.args.method == "GET":
            q = f"prompt={quote(prompt)}"
            if self.args.max_tokens:
                q += f"&max_tokens={self.args.max_tokens}"
            target = f"{path}?{self.url.query + '&' if self.url.query else ''}{q}"
            self.conn.request("GET", target)
        else:
            body = {"prompt": prompt}
            if self.args.max_tokens:
                body["max_tokens"] = self.args.max_tokens
            target = f"{path}?{self.url.query}" if self.url.query else path
            self.conn.request("POST", target, body=json.dumps(body).encode(),
                              headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.will_close:
            self.conn.close()
        return resp.status, resp.getheader("X-Model-Version"), data

    def record_latency(self, ms):
        self.seen += 1
        if len(self.latencies) < kReservoir:
            self.latencies.append(ms)
        else:
            j = self.rng.randrange(self.seen)
            if j < kReservoir:
                self.latencies[j] = ms

    def run(self):
        self.conn = self.connect()
        backoff = 0.0
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                status, version, data = self.request()
            except (OSError, http.client.HTTPException) as e:
                # Why not retried silently: a reset through the proxy is exactly what a
                # deployment must not cause, so each one is counted.
                kind = type(e).__name__
                self.errors[kind] = self.errors.get(kind, 0) + 1
                self.conn.close()
                self.conn = self.connect()
                backoff = kBackoffS[0] if backoff == 0 else min(backoff * 2, kBackoffS[1])
                self.stop.wait(backoff)
                continue
            backoff = 0.0
            self.record_latency((time.monotonic() - start) * 1000.0)
            key = str(status)
            self.by_status[key] = self.by_status.get(key, 0) + 1
            if version is None:
                try:
                    version = json.loads(data).get("model_version")
                except (ValueError, AttributeError):
                    version = None
            version = "unknown" if version is None else str(version)
            self.versions[version] = self.versions.get(version, 0) + 1
        self.conn.close()


def percentile(sorted_values, p):
    """Nearest-rank percentile of a sorted list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))
    return round(sorted_values[int(rank) - 1], 3)


def merge(dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080/v1/completions")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--duration", type=float, help="seconds to run")
    p.add_argument("--stop-file", help="stop as soon as this path exists")
    p.add_argument("--method", choices=("POST", "GET"), default="POST")
    p.add_argument("--prompt", help="send this prompt every time (default: random prompts)")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    p.add_argument("--seed", type=int)
    args = p.parse_args(argv)
    if args.duration is None and args.stop_file is None:
        p.error("give --duration, --stop-file or both")
    if args.duration is not None and args.duration <= 0:
        p.error("--duration must be positive")
    if not 1 <= args.concurrency <= 1024:
        p.error("--concurrency must be in [1, 1024]")
    url = urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        p.error("--url must be http://host:port/path")
    return args, url


def main(argv=None):
    args, url = parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    workers = [Worker(i, args, url, stop) for i in range(args.concurrency)]
    start = time.monotonic()
    deadline = None if args.duration is None else start + args.duration
    for w in workers:
        w.start()
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            break
        if args.stop_file and os.path.exists(args.stop_file):
            break
        stop.wait(0.02)
    stop.set()
    # A worker finishes its request in flight; --timeout bounds how long that can take.
    for w in workers:
        w.join(args.timeout + 1.0)
    elapsed = time.monotonic() - start
    by_status = merge(w.by_status for w in workers)
    errors = merge(w.errors for w in workers)
    latencies = sorted(x for w in workers for x in w.latencies)
    total = sum(by_status.values()) + sum(errors.values())
    summary = {
        "total": total,
        "by_status": by_status,
        "transport_errors": sum(errors.values()),
        "transport_error_kinds": errors,
        "versions": merge(w.versions for w in workers),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": round(sum(latencies) / len(latencies), 3) if latencies else None,
        "max_ms": round(latencies[-1], 3) if latencies else None,
        "duration_s": round(elapsed, 3),
        "rps": round(total / elapsed, 1) if elapsed > 0 else None,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
