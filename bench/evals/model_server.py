#!/usr/bin/python3
"""A deterministic OpenAI-shaped model for bench/evals (stdlib only). See bench/README.md,
"Evals: Assay vs promptfoo".

  model_server.py [--port 0] [--delay-ms 20] [--noise 0] [--seed 0] [--port-file F]

POST /v1/chat/completions (and POST /chat/completions) with {"model", "messages": [...]}:
after --delay-ms it answers from the last user message, the shapes make_dataset.py writes:

  "What is A+B? Reply with the number only."       -> "S"
  "What is A+B? Reply with a sentence."            -> "The answer is S."
  "What is A+B? Reply in JSON."                    -> '{"answer": S}'
  "What is A+B? Reply in capitals."                -> "THE SUM IS S"
  anything else                                    -> "I do not know."

where S = A+B. The model is wrong on purpose on a fixed tenth of the questions (a hash of the
prompt decides which; the wrong answer has the kind's own shape, e.g. S+1, a JSON object
without its closing brace, "the sum is S" in lower case), so that about a tenth of the
examples fail their assertions in every run, identically.

--noise P --seed S: besides that, each (seed, prompt) pair is wrong with probability P, drawn
from SHA-256(seed, prompt): a run is reproducible for a seed, whatever the order or the
concurrency of the requests, and a retry gets the same answer. A request whose "model" is
"seed-N" uses N instead of --seed, and "seed-N-noise-P" P instead of --noise too, so a
pipeline picks its own draw (eval_bench.py's reruns and its real-drop check).

GET /stats answers {"requests", "first", "last", "max_in_flight"}: the POSTs answered so far,
when the first of them arrived and when the last answer was sent (Unix seconds), and the most
requests being answered at once; POST /stats/reset zeroes them.

Threaded (ThreadingHTTPServer, HTTP/1.1 keep-alive), 127.0.0.1 only. Prints
"listening on 127.0.0.1:PORT" on stdout (and writes PORT to --port-file) once it accepts.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = re.compile(r'^seed-(\d+)(?:-noise-([0-9.]+))?$')
QUESTION = re.compile(r'^What is (\d+)\+(\d+)\? Reply (with the number only|with a sentence|'
                      r'in JSON|in capitals)\.$')


def unit(*parts):
    """A number in [0, 1) from SHA-256 of the parts: the same on every run and machine."""
    h = hashlib.sha256('\x00'.join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], 'big') / 2.0 ** 64


def answer(prompt, noise, seed):
    m = QUESTION.match(prompt)
    if not m:
        return 'I do not know.'
    a, b, kind = int(m.group(1)), int(m.group(2)), m.group(3)
    s = a + b
    wrong = unit('fixed', prompt) < 0.1 or (noise > 0 and unit('noise', seed, prompt) < noise)
    if kind == 'with the number only':
        return str(s + 1) if wrong else str(s)
    if kind == 'with a sentence':
        return 'I think it is %d.' % (s + 1) if wrong else 'The answer is %d.' % s
    if kind == 'in JSON':
        return '{"answer": %d' % s if wrong else '{"answer": %d}' % s
    return 'the sum is %d' % s if wrong else 'THE SUM IS %d' % s


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'  # keep-alive: both clients reuse connections if they can
    server_version = 'bench-model/1'

    def log_message(self, *a):  # quiet: 1,000s of requests per run
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == '/stats':
            srv = self.server
            with srv.lock:
                self.reply(200, {'requests': srv.count, 'first': srv.first, 'last': srv.last,
                                 'max_in_flight': srv.max_in_flight})
        elif self.path in ('/healthz', '/v1/models'):
            self.reply(200, {'object': 'list', 'data': [{'id': 'bench', 'object': 'model'}]})
        else:
            self.reply(404, {'error': {'message': 'not found'}})

    def do_POST(self):
        t0 = time.time()
        n = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(n)
        if self.path == '/stats/reset':
            with self.server.lock:
                self.server.count, self.server.first, self.server.last = 0, None, None
                self.server.max_in_flight = 0
            self.reply(200, {})
            return
        if self.path not in ('/v1/chat/completions', '/chat/completions'):
            self.reply(404, {'error': {'message': 'not found: ' + self.path}})
            return
        try:
            req = json.loads(raw)
            msgs = req['messages']
            prompt = [m for m in msgs if m.get('role') == 'user'][-1]['content']
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            self.reply(400, {'error': {'message': 'bad request'}})
            return
        srv = self.server
        seed, noise = srv.seed, srv.noise
        model = str(req.get('model') or '')
        m = MODEL.match(model)
        if m:
            seed = int(m.group(1))
            if m.group(2):
                noise = float(m.group(2))
        with srv.lock:
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        time.sleep(srv.delay)
        with srv.lock:
            srv.in_flight -= 1
        out = answer(prompt, noise, seed)
        pt, ct = max(1, len(prompt) // 4), max(1, len(out) // 4)
        with srv.lock:
            srv.count += 1
            n = srv.count
            if srv.first is None or t0 < srv.first:
                srv.first = t0
        self.reply(200, {
            'id': 'chatcmpl-bench-%d' % n, 'object': 'chat.completion',
            'created': int(time.time()), 'model': model or 'bench',
            'choices': [{'index': 0, 'finish_reason': 'stop',
                         'message': {'role': 'assistant', 'content': out}}],
            'usage': {'prompt_tokens': pt, 'completion_tokens': ct, 'total_tokens': pt + ct}})
        with srv.lock:
            srv.last = max(srv.last or 0, time.time())


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--delay-ms', type=float, default=20.0)
    ap.add_argument('--noise', type=float, default=0.0)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--port-file')
    a = ap.parse_args()
    srv = Server(('127.0.0.1', a.port), Handler)
    srv.delay, srv.noise, srv.seed = a.delay_ms / 1000.0, a.noise, a.seed
    srv.count, srv.first, srv.last, srv.lock = 0, None, None, threading.Lock()
    srv.in_flight = srv.max_in_flight = 0
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + '.tmp', 'w') as f:
            f.write('%d\n' % port)
        os.rename(a.port_file + '.tmp', a.port_file)
    print('listening on 127.0.0.1:%d' % port, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
