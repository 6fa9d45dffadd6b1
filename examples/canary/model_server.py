#!/usr/bin/env python3
"""A simulated LLM model server for Assay's deployment examples and tests (blue-green,
canary, rolling, drift). Python 3.11 standard library only.

    python3 model_server.py --port 0 --ready-file /tmp/port --version 3 --error-rate 0.01

It exposes what Assay's analysis and drift checks read from a real model server
(docs/llm-metrics.md): Prometheus metrics, recent feature samples, plus a /control endpoint
that changes its behaviour at runtime so a test can turn a good version bad.

Endpoints (all answers carry Content-Length; HTTP/1.1 keep-alive):
  POST /v1/completions   {"prompt": str, "max_tokens": int?} -> 200 {"model_version", "text",
                         "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}
                         or 500 {"error": {...}, "model_version"} on a simulated failure;
                         400 malformed JSON/fields, 411 no Content-Length, 413 body > 1 MiB;
                         HEAD answers 405.
  GET  /v1/completions?prompt=...&max_tokens=n   the same, for easy load generation.
  GET  /healthz          200 "ok"
  GET  /metrics          Prometheus text format 0.0.4
  GET  /assay/features?limit=N   recent feature samples (ring buffer of the last 5000)
  GET  /control          the current settings
  POST /control          {"error_rate": 0.5, "latency_ms": 300, ...} -> the new settings

Why a simulation and not a model: the deployment machinery only sees status codes, latency,
token counts, judge scores and feature distributions, and tests need each to be set exactly.
"""
import argparse
import collections
import json
import math
import os
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# Limits where input enters (STYLE.md 19).
kMaxBodyBytes = 1 << 20          # request body; larger -> 413
kMaxDrainBytes = 8 << 20         # bytes of a refused body read and dropped before closing
kMaxTokens = 4096                # max_tokens and --tokens-per-answer upper bound
kFeatureWindow = 5000            # feature samples kept (ring buffer)
kIdleTimeoutS = 60               # an idle keep-alive connection is closed after this

kLatencyBuckets = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
kTokenBuckets = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
kJudgeBuckets = tuple(round(0.1 * i, 1) for i in range(1, 11))
kLengthBuckets = tuple(2 ** i for i in range(0, 13))  # 1 .. 4096 tokens

kWords = ("the model answers with a short and plausible sentence about the question "
          "it was asked while the deployment watches its metrics closely").split()

# Stop words that decide the "language" categorical feature; no hit -> "other".
kLanguageWords = {
    "en": {"the", "and", "is", "of", "what", "how", "a", "to", "in", "why", "which"},
    "fr": {"le", "les", "est", "et", "des", "quelle", "comment", "une", "pourquoi", "du"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "wie", "ein", "warum", "welche"},
    "es": {"el", "los", "las", "es", "y", "qué", "cómo", "una", "por", "cuál"},
}


def detect_language(prompt):
    """Returns a coarse language label for a prompt: a script check, then stop-word votes."""
    for ch in prompt:
        o = ord(ch)
        if 0x4E00 <= o <= 0x9FFF:
            return "zh"
        if 0x0400 <= o <= 0x04FF:
            return "ru"
    words = prompt.lower().split()
    best, best_hits = "other", 0
    for lang, stop in kLanguageWords.items():
        hits = sum(1 for w in words if w.strip("?!.,;:¿¡") in stop)
        if hits > best_hits:
            best, best_hits = lang, hits
    return best


# ---------------------------------------------------------------- settings


class Setting:
    """One runtime-changeable knob: its type and inclusive bounds."""

    def __init__(self, kind, lo, hi, help_text):
        self.kind, self.lo, self.hi, self.help = kind, lo, hi, help_text

    def parse(self, name, value):
        """Returns the validated value or raises ValueError naming the field."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}: expected a number")
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{name}: expected an integer")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite number")
        if not self.lo <= value <= self.hi:
            raise ValueError(f"{name}: must be in [{self.lo}, {self.hi}]")
        return value


SETTINGS = {
    "error_rate": Setting(float, 0.0, 1.0, "probability that a completion fails with 500"),
    "latency_ms": Setting(float, 0.0, 600000.0, "mean total latency of a completion"),
    "latency_jitter_ms": Setting(float, 0.0, 600000.0, "standard deviation of the latency"),
    "ttft_ms": Setting(float, 0.0, 600000.0, "mean time to first token (<= total latency)"),
    "tokens_per_answer": Setting(int, 1, kMaxTokens, "completion tokens (capped by max_tokens)"),
    "cost_per_1k_tokens": Setting(float, 0.0, 1e6, "USD per 1000 prompt+completion tokens"),
    "judge_score": Setting(float, 0.0, 1.0, "mean simulated LLM-judge score"),
    "judge_sample_rate": Setting(float, 0.0, 1.0, "fraction of successful answers judged"),
    "prompt_length_shift": Setting(float, -1e6, 1e6, "added to the prompt_length feature"),
}


# ---------------------------------------------------------------- metrics


class Histogram:
    """A Prometheus classic histogram (cumulative buckets are computed at exposition)."""

    def __init__(self, buckets):
        self.bounds = tuple(float(b) for b in buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # last: above every bound (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, v):
        # REQUIRES: the owning Model's lock held.
        i = 0
        while i < len(self.bounds) and v > self.bounds[i]:
            i += 1
        self.counts[i] += 1
        self.sum += v
        self.count += 1


def fmt_number(v):
    """Formats like Go's strconv 'g' for the values we emit: integral floats without '.0'."""
    if isinstance(v, int):
        return str(v)
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def escape_label(v):
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(v):
    return v.replace("\\", "\\\\").replace("\n", "\\n")


class Model:
    """All mutable state: settings, the random source, metrics and the feature ring buffer.

    Thread-safe: every public method takes `lock`; request threads never sleep holding it.
    """

    def __init__(self, version, settings, seed):
        self.version = version
        self.lock = threading.Lock()
        self.settings = dict(settings)          # GUARDED_BY(lock)
        self.rng = random.Random(seed)          # GUARDED_BY(lock)
        # Every code a completion can answer is pre-created so rate() has a zero to start from.
        self.requests = {"200": 0, "500": 0}    # GUARDED_BY(lock), by HTTP code
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        self.judged = 0
        self.duration = Histogram(kLatencyBuckets)
        self.ttft = Histogram(kLatencyBuckets)
        self.tokens = Histogram(kTokenBuckets)
        self.judge = Histogram(kJudgeBuckets)
        self.prompt_length = Histogram(kLengthBuckets)
        self.output_length = Histogram(kLengthBuckets)
        self.samples = collections.deque(maxlen=kFeatureWindow)  # (prompt_len, output_len, lang)

    def get_settings(self):
        with self.lock:
            return dict(self.settings)

    def update_settings(self, changes):
        """Validates every field first, then applies all or none. Raises ValueError."""
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object")
        parsed = {}
        for name, value in changes.items():
            if name not in SETTINGS:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
            parsed[name] = SETTINGS[name].parse(name, value)
        with self.lock:
            self.settings.update(parsed)
            return dict(self.settings)

    def plan(self, prompt, max_tokens):
        """Draws one request's outcome. Returns a dict; the caller sleeps, then calls finish."""
        with self.lock:
            s = self.settings
            r = self.rng
            failed = r.random() < s["error_rate"]
            latency = max(0.0, r.gauss(s["latency_ms"], s["latency_jitter_ms"])) / 1000.0
            ttft = max(0.0, r.gauss(s["ttft_ms"], s["latency_jitter_ms"] / 4)) / 1000.0
            ttft = min(ttft, latency) if latency > 0 else ttft
            latency = max(latency, ttft)
            n = s["tokens_per_answer"] if max_tokens is None else min(s["tokens_per_answer"],
                                                                      max_tokens)
            words = [r.choice(kWords) for _ in range(n)]
            judged = (not failed) and r.random() < s["judge_sample_rate"]
            score = min(1.0, max(0.0, r.gauss(s["judge_score"], 0.05))) if judged else None
            shift = s["prompt_length_shift"]
            cost_per_1k = s["cost_per_1k_tokens"]
        prompt_tokens = len(prompt.split())
        return {"failed": failed, "latency": latency, "ttft": ttft, "text": " ".join(words),
                "prompt_tokens": prompt_tokens, "completion_tokens": n, "score": score,
                "shift": shift, "cost_per_1k": cost_per_1k, "language": detect_language(prompt)}

    def finish(self, plan, elapsed_s):
        """Records one completed request (success or simulated failure)."""
        with self.lock:
            self.duration.observe(elapsed_s)
            if plan["failed"]:
                self.requests["500"] += 1
                return
            self.requests["200"] += 1
            pt, ct = plan["prompt_tokens"], plan["completion_tokens"]
            self.prompt_tokens += pt
            self.completion_tokens += ct
            self.cost_usd += (pt + ct) / 1000.0 * plan["cost_per_1k"]
            self.ttft.observe(plan["ttft"])
            self.tokens.observe(pt + ct)
            if plan["score"] is not None:
                self.judged += 1
                self.judge.observe(plan["score"])
            plen = max(0.0, pt + plan["shift"])
            plen = int(plen) if plen.is_integer() else plen
            self.prompt_length.observe(plen)
            self.output_length.observe(ct)
            self.samples.append((plen, ct, plan["language"], round(elapsed_s * 1000.0, 3)))

    def count_refused(self, code):
        """Counts a completion request refused before planning (400, 411, 413)."""
        with self.lock:
            key = str(code)
            self.requests[key] = self.requests.get(key, 0) + 1

    def features(self, limit):
        with self.lock:
            recent = list(self.samples)[-limit:] if limit > 0 else []
        langs = collections.Counter(s[2] for s in recent)
        return {"version": self.version, "count": len(recent), "window": kFeatureWindow,
                "features": {"prompt_length": [s[0] for s in recent],
                             "output_length": [s[1] for s in recent],
                             "latency_ms": [s[3] for s in recent]},
                "categorical": {"language": dict(sorted(langs.items()))}}

    def exposition(self):
        """Returns the Prometheus text format (0.0.4) of every metric."""
        v = f'version="{escape_label(self.version)}"'
        out = []

        def head(name, kind, help_text):
            out.append(f"# HELP {name} {escape_help(help_text)}")
            out.append(f"# TYPE {name} {kind}")

        def counter(name, help_text, value):
            head(name, "counter", help_text)
            out.append(f"{name}{{{v}}} {fmt_number(value)}")

        def histogram(name, help_text, h):
            head(name, "histogram", help_text)
            cumulative = 0
            for bound, c in zip(h.bounds, h.counts):
                cumulative += c
                out.append(f'{name}_bucket{{{v},le="{fmt_number(bound)}"}} {cumulative}')
            out.append(f'{name}_bucket{{{v},le="+Inf"}} {h.count}')
            out.append(f"{name}_sum{{{v}}} {fmt_number(h.sum)}")
            out.append(f"{name}_count{{{v}}} {h.count}")

        with self.lock:
            head("llm_requests_total", "counter",
                 "Completion requests answered, by HTTP status code.")
            for code in sorted(self.requests):
                out.append(f'llm_requests_total{{{v},code="{code}"}} {self.requests[code]}')
            histogram("llm_request_duration_seconds",
                      "Time from request received to response sent, every completed request.",
                      self.duration)
            histogram("llm_time_to_first_token_seconds",
                      "Time to the first generated token, successful requests.", self.ttft)
            counter("llm_prompt_tokens_total", "Prompt tokens of successful requests.",
                    self.prompt_tokens)
            counter("llm_completion_tokens_total", "Completion tokens generated.",
                    self.completion_tokens)
            histogram("llm_tokens_per_request",
                      "Prompt plus completion tokens per successful request.", self.tokens)
            counter("llm_cost_usd_total", "Cost of the tokens served, in US dollars.",
                    self.cost_usd)
            histogram("llm_judge_score",
                      "LLM-judge score (0..1) of sampled successful answers.", self.judge)
            counter("llm_judged_requests_total", "Successful answers sent to the judge.",
                    self.judged)
            histogram("llm_feature_prompt_length",
                      "Prompt length feature in tokens, as seen by drift detection.",
                      self.prompt_length)
            histogram("llm_feature_output_length",
                      "Output length feature in tokens, as seen by drift detection.",
                      self.output_length)
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------- HTTP adapter


class Handler(BaseHTTPRequestHandler):
    """Translates HTTP to Model calls. `server.model` is the shared Model."""

    protocol_version = "HTTP/1.1"
    timeout = kIdleTimeoutS
    # Why: headers and body are two writes; with Nagle on, a keep-alive client's delayed ACK
    # adds ~40 ms to every answer.
    disable_nagle_algorithm = True

    def version_string(self):
        return "assay-canary-model"

    def log_message(self, *args):
        pass

    # A request is "in flight" from its request line until its answer is written, so the
    # SIGTERM drain waits for it; an idle keep-alive connection is not.
    def handle_one_request(self):
        self._tracked = False
        try:
            super().handle_one_request()
        finally:
            if self._tracked:
                self.server.end_request()

    def parse_request(self):
        self._tracked = True
        self.server.begin_request()
        return super().parse_request()

    def _send(self, status, body, content_type="application/json", close=False):
        if isinstance(body, (dict, list)):
            data = (json.dumps(body) + "\n").encode()
        else:
            data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Model-Version", self.server.model.version)
        if close or self.server.draining.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status, message, close=False):
        self._send(status, {"error": {"code": status, "message": message},
                            "model_version": self.server.model.version}, close=close)

    def _drain(self, length):
        """Reads and drops up to kMaxDrainBytes of a refused body, so the client sees our
        answer instead of a reset."""
        remaining = min(length, kMaxDrainBytes)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _read_json(self, count_as_completion):
        """Returns the parsed body, or None after answering the error itself."""
        model = self.server.model

        def refuse(status, message, close=False):
            if count_as_completion:
                model.count_refused(status)
            self._error(status, message, close=close)
            return None

        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return refuse(411, "send a Content-Length; chunked bodies are not accepted",
                          close=True)
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return refuse(411, "Content-Length required", close=True)
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError
        except ValueError:
            return refuse(400, "bad Content-Length", close=True)
        if length > kMaxBodyBytes:
            self._drain(length)
            return refuse(413, f"body over {kMaxBodyBytes} bytes", close=True)
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            return refuse(400, f"malformed JSON: {e}")

    def do_HEAD(self):
        if urlsplit(self.path).path == "/v1/completions":
            self._error(405, "use GET or POST")
        else:
            self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path == "/healthz":
            self._send(200, "ok\n", "text/plain; charset=utf-8")
        elif url.path == "/metrics":
            self._send(200, self.server.model.exposition(),
                       "text/plain; version=0.0.4; charset=utf-8")
        elif url.path == "/v1/completions":
            req = {"prompt": query.get("prompt", [""])[-1]}
            if "max_tokens" in query:
                try:
                    req["max_tokens"] = int(query["max_tokens"][-1])
                except ValueError:
                    self.server.model.count_refused(400)
                    self._error(400, "max_tokens: expected an integer")
                    return
            self._complete(req)
        elif url.path == "/assay/features":
            try:
                limit = int(query.get("limit", [str(kFeatureWindow)])[-1])
                if limit < 0:
                    raise ValueError
            except ValueError:
                self._error(400, "limit: expected a non-negative integer")
                return
            self._send(200, self.server.model.features(min(limit, kFeatureWindow)))
        elif url.path == "/control":
            self._send(200, self._settings_body(self.server.model.get_settings()))
        else:
            self._error(404, "not found")

    def do_POST(self):
        path = urlsplit(self.path).path
        if path == "/v1/completions":
            body = self._read_json(count_as_completion=True)
            if body is not None:
                self._complete(body)
        elif path == "/control":
            body = self._read_json(count_as_completion=False)
            if body is None:
                return
            try:
                settings = self.server.model.update_settings(body)
            except ValueError as e:
                self._error(400, str(e))
                return
            self._send(200, self._settings_body(settings))
        else:
            # Why: the unread body would be parsed as the next request on this connection.
            self._error(404, "not found", close=True)

    def _settings_body(self, settings):
        return {"version": self.server.model.version, "settings": settings}

    def _complete(self, req):
        start = time.monotonic()
        model = self.server.model
        if not isinstance(req, dict) or not isinstance(req.get("prompt"), str):
            model.count_refused(400)
            self._error(400, 'expected {"prompt": string, "max_tokens": integer?}')
            return
        max_tokens = req.get("max_tokens")
        if max_tokens is not None and (isinstance(max_tokens, bool)
                                       or not isinstance(max_tokens, int)
                                       or not 1 <= max_tokens <= kMaxTokens):
            model.count_refused(400)
            self._error(400, f"max_tokens: expected an integer in [1, {kMaxTokens}]")
            return
        plan = model.plan(req["prompt"], max_tokens)
        remaining = plan["latency"] - (time.monotonic() - start)
        if remaining > 0:
            time.sleep(remaining)
        # Why: recorded before the answer is written, so a client that has its answer also
        # finds it in /metrics. The write itself is not timed.
        model.finish(plan, time.monotonic() - start)
        if plan["failed"]:
            self._error(500, "simulated model failure")
            return
        self._send(200, {
            "model_version": model.version,
            "text": plan["text"],
            "usage": {"prompt_tokens": plan["prompt_tokens"],
                      "completion_tokens": plan["completion_tokens"],
                      "total_tokens": plan["prompt_tokens"] + plan["completion_tokens"]},
        })


class Server(ThreadingHTTPServer):
    """One thread per connection. On SIGTERM main() stops accepting, sets `draining` (every
    answer from then on says Connection: close) and waits for requests in flight."""

    daemon_threads = True
    block_on_close = False  # Why: idle keep-alive connections must not delay SIGTERM
    allow_reuse_address = True

    def __init__(self, address, model):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.model = model
        self.draining = threading.Event()
        self._idle = threading.Condition()
        self._inflight = 0                      # GUARDED_BY(_idle)
        super().__init__(address, Handler)

    def begin_request(self):
        with self._idle:
            self._inflight += 1

    def end_request(self):
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout_s):
        """Returns True when no completion is in flight, False after timeout_s."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout_s)


# ---------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (only this one)")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--version", default="1", help="model version label (e.g. 3)")
    p.add_argument("--ready-file", help="write the bound port here once listening")
    p.add_argument("--seed", type=int, help="seed for deterministic randomness")
    p.add_argument("--drain-timeout-s", type=float, default=0.8,
                   help="on SIGTERM, wait this long for requests in flight")
    defaults = {"error_rate": 0.0, "latency_ms": 20.0, "latency_jitter_ms": 0.0, "ttft_ms": 5.0,
                "tokens_per_answer": 16, "cost_per_1k_tokens": 0.002, "judge_score": 0.8,
                "judge_sample_rate": 0.2, "prompt_length_shift": 0.0}
    for name, setting in SETTINGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=setting.kind, default=defaults[name],
                       help=f"{setting.help} (default {defaults[name]}; /control: {name})")
    args = p.parse_args(argv)
    settings = {}
    for name, setting in SETTINGS.items():
        try:
            settings[name] = setting.parse("--" + name.replace("_", "-"), getattr(args, name))
        except ValueError as e:
            p.error(str(e))
    if not 0 <= args.drain_timeout_s <= 3600:
        p.error("--drain-timeout-s must be in [0, 3600]")
    if not 0 <= args.port <= 65535:
        p.error("--port must be in [0, 65535]")
    return args, settings


def write_ready_file(path, port):
    # Why: write then rename, so a reader never sees an empty or partial file.
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv=None):
    args, settings = parse_args(argv)
    model = Model(args.version, settings, args.seed)
    try:
        server = Server((args.host, args.port), model)
    except OSError as e:
        print(f"model_server: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    port = server.server_address[1]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    if args.ready_file:
        try:
            write_ready_file(args.ready_file, port)
        except OSError as e:
            print(f"model_server: cannot write --ready-file: {e}", file=sys.stderr)
            server.shutdown()
            server.server_close()
            return 1
    print(f"model_server: version {args.version} listening on {args.host}:{port}",
          file=sys.stderr, flush=True)
    # Why a polling wait: the signal handler runs on this (main) thread between waits.
    while not stop.wait(0.1):
        pass
    # Drain: refuse new connections, let completions in flight answer (with Connection:
    # close) for up to --drain-timeout-s, then exit; whatever is still running is dropped.
    # Why this order: connections made between shutdown() and server_close() would sit in the
    # backlog and be reset; until the listener is closed, answers keep connections alive.
    server.shutdown()       # returns within poll_interval
    server.server_close()
    server.draining.set()
    drained = server.wait_idle(args.drain_timeout_s)
    if not drained:
        print("model_server: drain timeout, dropping requests in flight", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
