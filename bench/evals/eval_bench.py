#!/usr/bin/python3
"""Evals: Assay vs promptfoo, and the gate's false-failure rate. See bench/README.md ("Evals:
Assay vs promptfoo") for the protocol and the figures.

  eval_bench.py [--build-dir build] [--work DIR] [--pg-port P] [--runs 3] [--n 1000]
                [--concurrency 8] [--delay-ms 20] [--parts throughput,gate]
                [--reruns 200] [--noise 0.1] [--gate-budget-s 1200] [--drop-noise 0.25]
                [--promptfoo-debug-log] [--out OUT.json]

Part 1 (throughput): one model server (model_server.py, --delay-ms, no noise), the same N
examples for both tools (make_dataset.py), the same concurrency. K times, alternating:
  promptfoo  `promptfoo eval -c promptfooconfig.yaml --max-concurrency C --no-cache --no-write`
             under /usr/bin/time -v; its rate is N / wall time of the process (and, for
             reference, (N-1) / (wall(N) - wall(1)) with a 1-example config run just before).
             Peak RSS: the largest process (time -v) and the process tree's summed RSS, polled
             from /proc every 50 ms.
  Assay      a fresh assay-agent (1 slot); a push whose eval has 1 example, then a push whose
             eval has the N examples; rate = (N-1) / (job(N) - job(1)), job = the job's
             finished_at - started_at from the API, so checkout and step start-up cancel out.
             Peak RSS: the agent's VmHWM after both jobs; the server's VmHWM after all runs.
Each run's per-example verdicts (promptfoo: results[].success by test description; Assay:
GET /api/v1/evals/{id}?examples=all, example_results[].passed) are compared with each other
and with this script's own reading of the assertions; every mismatch is printed.

Part 2 (gate): a second model server with --noise P. The pipeline's eval gates on
`assertions: { max_drop: 0.05, vs: main }`; one push to main (model "seed-0") sets the
baseline, then R pushes of new commits to branch `rerun`, each asking for model "seed-i"
(the same noise rate, a different draw), so main's baseline never moves. Counts the reruns
whose gate failed. R is scaled down to fit --gate-budget-s after timing the first reruns
(the R used and the wall time are printed).

Starts its own PostgreSQL (deploy/lib/pg.sh, durable defaults) unless --pg-port is given;
everything listens on 127.0.0.1; every process started here is stopped (by PID).
"""
import argparse
import datetime
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import make_dataset  # noqa: E402

ADMIN = 'bench-admin-token-0123456789abcdef'
AGENT_TOKEN = 'bench-agent-token'
SECRET = 'bench-secret'
REPO = 'bench/evals'
PY = '/usr/bin/python3'


def log(*a):
    print('[%s]' % time.strftime('%H:%M:%S'), *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def ts(s):
    """The API's '2026-12-01T11:30:00.123Z' as seconds."""
    return datetime.datetime.strptime(s, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=datetime.timezone.utc).timestamp()


def metric(run, name):
    """The run's metric `name` ({name, value, lo, hi, n}) from the API's list, or None."""
    for m in run.get('metrics') or []:
        if m.get('name') == name:
            return m
    return None


def verdicts(run):
    return [v.get('explanation') for v in run.get('verdicts') or []]


def proc_cpu(pid):
    """utime + stime of a live process (itself, not its children), seconds."""
    with open('/proc/%d/stat' % pid) as f:
        st = f.read()
    fields = st[st.rindex(')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def proc_status(pid, key):
    """VmHWM / VmRSS of a live process in KiB, or None."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class TreeRss:
    """Polls the summed VmRSS of a process and its descendants; keeps the maximum (KiB)."""

    def __init__(self, pid, every=0.05):
        self.pid, self.every, self.peak, self.procs = pid, every, 0, 0
        self.stop_ = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def tree(self):
        kids = {}
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % d) as f:
                    st = f.read()
                ppid = int(st[st.rindex(')') + 2:].split()[1])
            except (OSError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(kids.get(p, []))
        return out

    def run(self):
        while not self.stop_.is_set():
            pids = self.tree()
            total = sum(proc_status(p, 'VmRSS') or 0 for p in pids)
            if total > self.peak:
                self.peak, self.procs = total, len(pids)
            self.stop_.wait(self.every)

    def stop(self):
        self.stop_.set()
        self.t.join()
        return self.peak


# ---------------------------------------------------------------- the assertions, read here
def check(out, a):
    t, v = a['type'], a.get('value')
    neg = t.startswith('not-')
    if neg:
        t = t[4:]
    if t == 'equals':
        ok = out == v
    elif t == 'contains':
        ok = v in out
    elif t == 'icontains':
        ok = v.lower() in out.lower()
    elif t == 'starts-with':
        ok = out.startswith(v)
    elif t == 'regex':
        ok = re.search(v, out) is not None
    elif t == 'is-json':
        try:
            json.loads(out)
            ok = True
        except ValueError:
            ok = False
    else:
        raise ValueError(t)
    return ok != neg


# ---------------------------------------------------------------- the bench
class Bench:
    def __init__(self, a):
        self.a = a
        self.procs = []
        self.pg_dir = None
        self.delivery = 0
        self.results = {'args': vars(a)}

    # -------------------------------------------------------------- helpers
    def dsn(self, db='postgres'):
        return 'postgresql://postgres@127.0.0.1:%d/%s' % (self.a.pg_port, db)

    def sql(self, q, db='postgres'):
        r = subprocess.run(['psql', '-XAtq', '-F', '|', '-v', 'ON_ERROR_STOP=1', '-c', q,
                            self.dsn(db)], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError('psql: ' + r.stderr.strip())
        return [l.split('|') for l in r.stdout.splitlines() if l]

    def http(self, method, url, body=None, headers=None, timeout=10):
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def api(self, path):
        st, body = self.http('GET', self.base + path, headers={'Authorization': 'Bearer ' + ADMIN})
        if st != 200:
            raise RuntimeError('GET %s: %d %s' % (path, st, body[:300]))
        return json.loads(body)

    def wait(self, what, fn, timeout, step=0.05):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(step)
        raise RuntimeError('timed out after %ss waiting for %s' % (timeout, what))

    def start(self, argv, logpath, env=None, stdout=None):
        f = open(logpath, 'ab')
        p = subprocess.Popen(argv, stdout=stdout or f, stderr=f, stdin=subprocess.DEVNULL, env=env)
        f.close()
        self.procs.append(p)
        return p

    def stop(self, p, grace=10):
        if p in self.procs:
            self.procs.remove(p)
        if p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def cleanup(self):
        for p in reversed(list(self.procs)):
            self.stop(p, grace=5)
        if self.pg_dir:
            subprocess.run(['bash', '-c', 'source deploy/lib/pg.sh && pg_stop "$1"', '_',
                            self.pg_dir], cwd=ROOT, capture_output=True, timeout=120)
            self.pg_dir = None

    # -------------------------------------------------------------- set-up
    def start_pg(self):
        if self.a.pg_port:
            return
        self.a.pg_port = free_port()
        self.pg_dir = os.path.join(self.a.work, 'pg')
        if os.geteuid() == 0:
            os.chmod(self.a.work, 0o755)  # initdb runs as postgres
        r = subprocess.run(['bash', '-c', 'source deploy/lib/pg.sh && pg_start "$1" "$2"', '_',
                            self.pg_dir, str(self.a.pg_port)], cwd=ROOT, capture_output=True,
                           text=True, timeout=180)
        if r.returncode != 0:
            self.pg_dir = None
            raise RuntimeError('PostgreSQL did not start: ' + r.stderr)
        log('PostgreSQL on 127.0.0.1:%d (%s)' % (self.a.pg_port, self.pg_dir))

    def model_reset(self, port):
        self.http('POST', 'http://127.0.0.1:%d/stats/reset' % port, b'')

    def model_stats(self, port):
        """(requests, seconds from the first request's arrival to the last answer, the most
        requests in the model's delay at once)."""
        st = json.loads(self.http('GET', 'http://127.0.0.1:%d/stats' % port)[1])
        return (st['requests'], (st['last'] - st['first']) if st['first'] else 0.0,
                st['max_in_flight'])

    def start_model(self, name, noise=0.0, seed=0):
        pf = os.path.join(self.a.work, name + '.port')
        p = self.start([PY, os.path.join(HERE, 'model_server.py'), '--delay-ms',
                        str(self.a.delay_ms), '--noise', str(noise), '--seed', str(seed),
                        '--port-file', pf], os.path.join(self.a.work, name + '.log'))
        port = int(self.wait(name, lambda: os.path.exists(pf) and open(pf).read().strip(), 30))
        log('%s on 127.0.0.1:%d (delay %g ms, noise %g)' % (name, port, self.a.delay_ms, noise))
        return p, port

    def start_server(self):
        db = 'assay_bench_evals'
        self.sql('DROP DATABASE IF EXISTS %s' % db)
        self.sql('CREATE DATABASE %s' % db)
        self.db = db
        http, self.grpc = free_port(), free_port()
        self.base = 'http://127.0.0.1:%d' % http
        d = os.path.join(self.a.work, 'server')
        self.server = self.start(
            [os.path.join(self.a.build_dir, 'server/assay-server'),
             '--http-listen', '127.0.0.1:%d' % http, '--grpc-listen', '127.0.0.1:%d' % self.grpc,
             '--database-url', self.dsn(db), '--data-dir', d,
             '--allow-shared-agent-token', '--grpc-insecure', '--allow-local-repos'],
            os.path.join(self.a.work, 'server.log'),
            # Tokens through the environment: never on a command line.
            dict(os.environ, ASSAY_ADMIN_TOKEN=ADMIN, ASSAY_AGENT_TOKEN=AGENT_TOKEN))
        self.wait('server /healthz', self.healthz, 60)
        st, body = self.http('POST', self.base + '/api/v1/repos', json.dumps(
            {'name': REPO, 'clone_url': self.clone_url, 'webhook_secret': SECRET}).encode(),
            {'Authorization': 'Bearer ' + ADMIN})
        if st != 201:
            raise RuntimeError('add repo: %d %s' % (st, body))

    def healthz(self):
        try:
            return json.loads(self.http('GET', self.base + '/healthz', timeout=2)[1])
        except (OSError, ValueError):
            return None

    def start_agent(self, name, slots=1):
        job_user = ['--job-user', 'root'] if os.geteuid() == 0 else []
        before = (self.healthz() or {}).get('agents', 0)
        p = self.start([os.path.join(self.a.build_dir, 'agent/assay-agent'), '--server',
                        '127.0.0.1:%d' % self.grpc, '--grpc-insecure', '--name', name,
                        '--slots', str(slots), '--work-dir', os.path.join(self.a.work, name),
                        '--kill-grace', '1s', '--allow-local-repos'] + job_user,
                       os.path.join(self.a.work, name + '.log'),
                       dict(os.environ, ASSAY_TOKEN=AGENT_TOKEN))
        self.wait('agent ' + name, lambda: (self.healthz() or {}).get('agents') == before + 1, 30)
        return p

    def git(self, *c):
        return subprocess.run(c, cwd=self.src, check=True, capture_output=True,
                              text=True).stdout.strip()

    def make_repo(self):
        self.src = os.path.join(self.a.work, 'src')
        os.makedirs(self.src)
        self.git('git', 'init', '-q', '-b', 'main')
        self.git('git', 'config', 'user.email', 'bench@example.invalid')
        self.git('git', 'config', 'user.name', 'bench')
        self.git('git', 'commit', '-q', '--allow-empty', '-m', 'root')
        self.bare = os.path.join(self.a.work, 'repo.git')
        subprocess.run(['git', 'clone', '-q', '--bare', self.src, self.bare], check=True,
                       capture_output=True)
        self.git('git', 'remote', 'add', 'origin', self.bare)
        self.clone_url = 'file://' + self.bare

    def pipeline_yaml(self, name, port, model='bench', gate=None):
        y = ('jobs:\n  qa:\n    steps:\n      - name: eval\n        eval:\n'
             '          name: %s\n          dataset: evals/qa.jsonl\n'
             '          model:\n            url: http://127.0.0.1:%d/v1/chat/completions\n'
             '            name: %s\n'
             '          concurrency: %d\n          timeout: 30s\n' % (
                 name, port, model, self.a.concurrency))
        if gate:
            y += '          gate: %s\n' % gate
        return y

    def push(self, branch, files, msg):
        """Commits `files` on `branch`, pushes it to the bare repo and sends the webhook;
        returns the pipeline id."""
        cur = self.git('git', 'rev-parse', '--abbrev-ref', 'HEAD')
        if cur != branch:
            self.git('git', 'checkout', '-q', '-B', branch)
        for path, text in files.items():
            full = os.path.join(self.src, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if isinstance(text, str) and text.startswith('@copy:'):
                shutil.copyfile(text[6:], full)
            else:
                with open(full, 'w') as f:
                    f.write(text)
            self.git('git', 'add', path)
        self.git('git', 'commit', '-q', '--allow-empty', '-m', msg)
        sha = self.git('git', 'rev-parse', 'HEAD')
        self.git('git', 'push', '-q', '-f', 'origin', branch)
        self.delivery += 1
        body = json.dumps({'ref': 'refs/heads/' + branch, 'before': '0' * 40, 'after': sha,
                           'repository': {'clone_url': self.clone_url, 'full_name': REPO,
                                          'default_branch': 'main'}}).encode()
        sig = 'sha256=' + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        st, resp = self.http('POST', self.base + '/hooks/github', body, {
            'X-GitHub-Event': 'push', 'X-GitHub-Delivery': 'evals-%d' % self.delivery,
            'X-Hub-Signature-256': sig, 'Content-Type': 'application/json'})
        if st != 202:
            raise RuntimeError('push: %d %s' % (st, resp))
        delivery = json.loads(resp)['delivery']
        return int(self.wait('pipeline of delivery %d' % delivery, lambda: self.sql(
            'SELECT id FROM pipelines WHERE delivery_id = %d' % delivery, self.db), 60)[0][0])

    def finish(self, pid, timeout=600):
        def done():
            p = self.api('/api/v1/pipelines/%d' % pid)
            return p if p['state'] not in ('running', 'pending', 'queued') else None
        p = self.wait('pipeline %d' % pid, done, timeout, step=0.1)
        job = p['jobs'][0]
        runs = self.api('/api/v1/jobs/%d/evals' % job['id'])['evals']
        return p, job, runs

    # -------------------------------------------------------------- part 1
    def promptfoo(self, cfg, out_json, tag):
        env = dict(os.environ, PROMPTFOO_DISABLE_TELEMETRY='1', PROMPTFOO_CACHE_ENABLED='false',
                   PROMPTFOO_DISABLE_UPDATE='1', PROMPTFOO_DISABLE_SHARING='1',
                   PROMPTFOO_DISABLE_REMOTE_GENERATION='1', PROMPTFOO_SELF_HOSTED='1',
                   # By default every run also writes a debug log file (2 MB for 1,000 tests).
                   PROMPTFOO_DISABLE_DEBUG_LOG='0' if self.a.promptfoo_debug_log else '1',
                   PROMPTFOO_CONFIG_DIR=os.path.join(self.a.work, 'promptfoo-home'),
                   OPENAI_API_KEY='x', NO_COLOR='1', CI='1')
        time_out = os.path.join(self.a.work, tag + '.time')
        argv = ['/usr/bin/time', '-v', '-o', time_out, self.a.promptfoo, 'eval', '-c', cfg,
                '--max-concurrency', str(self.a.concurrency), '--no-cache', '--no-write',
                '--no-table', '--no-progress-bar', '--no-share', '-o', out_json]
        logp = os.path.join(self.a.work, tag + '.log')
        t0 = time.time()
        p = self.start(argv, logp, env)
        rss = TreeRss(p.pid)
        try:
            rc = p.wait(600)
        finally:
            peak = rss.stop()
            self.procs.remove(p)
        wall = time.time() - t0
        if rc not in (0, 100):  # 100: some tests failed
            raise RuntimeError('promptfoo exited %d; see %s' % (rc, logp))
        maxrss, cpu = None, 0.0
        for line in open(time_out):
            if 'Maximum resident set size' in line:
                maxrss = int(line.split(':')[1])
            if 'User time (seconds)' in line or 'System time (seconds)' in line:
                cpu += float(line.split(':')[1])
        self.last_cpu = cpu
        return wall, maxrss, peak

    def promptfoo_verdicts(self, path):
        d = json.load(open(path))
        res = d['results']['results']
        out = {}
        for r in res:
            tid = (r.get('testCase') or {}).get('description') or r.get('description')
            out[tid] = (bool(r['success']), (r.get('response') or {}).get('output'),
                        r.get('error') or '')
        return out

    def assay_verdicts(self, run_id):
        d = self.api('/api/v1/evals/%d?examples=all' % run_id)
        return d, {e['id']: (bool(e['passed']), e['output'], e['error'])
                   for e in d['example_results']}

    def throughput(self):
        a = self.a
        model, port = self.start_model('model')
        ds = os.path.join(a.work, 'ds%d' % a.n)
        ds1 = os.path.join(a.work, 'ds1')
        ex = {e['id']: e for e in make_dataset.write(ds, port, a.n, 1, a.concurrency)}
        make_dataset.write(ds1, port, 1, 1, a.concurrency)
        self.start_server()
        runs = []
        for k in range(a.runs):
            r = {'run': k + 1}
            # promptfoo: 1 example (start-up), then N.
            w1, _, _ = self.promptfoo(os.path.join(ds1, 'promptfooconfig.yaml'),
                                      os.path.join(a.work, 'pf1-%d.json' % k), 'pf1-%d' % k)
            out = os.path.join(a.work, 'pf-%d.json' % k)
            self.model_reset(port)
            w, maxrss, tree = self.promptfoo(os.path.join(ds, 'promptfooconfig.yaml'), out,
                                             'pf-%d' % k)
            pf = self.promptfoo_verdicts(out)
            r['promptfoo'] = {'wall_s': w, 'wall_1_s': w1, 'rate': a.n / w,
                              'cpu_s': self.last_cpu,
                              'rate_minus_startup': (a.n - 1) / (w - w1),
                              'maxrss_kib': maxrss, 'tree_rss_kib': tree,
                              'passed': sum(v[0] for v in pf.values()), 'results': len(pf),
                              'requests': self.model_stats(port)[0],
                              'window_s': self.model_stats(port)[1],
                              'max_in_flight': self.model_stats(port)[2]}
            log('run %d promptfoo: %.2f s (1 example: %.2f s) -> %.1f ex/s (%.1f without '
                'start-up); max RSS %.1f MiB (tree %.1f MiB); %d of %d passed' % (
                    k + 1, w, w1, a.n / w, (a.n - 1) / (w - w1), maxrss / 1024, tree / 1024,
                    r['promptfoo']['passed'], len(pf)))
            # Assay: a fresh agent; 1 example, then N.
            agent = self.start_agent('agent-%d' % k)
            durs, verdicts, run_json = [], None, None
            for size, src in ((1, ds1), (a.n, ds)):
                self.model_reset(port)
                cpu0 = proc_cpu(agent.pid)
                pid = self.push('bench', {
                    '.assay.yml': self.pipeline_yaml('tp', port),
                    'evals/qa.jsonl': '@copy:' + os.path.join(src, 'qa.jsonl')},
                    'run %d: %d examples' % (k + 1, size))
                p, job, evs = self.finish(pid)
                if job['state'] != 'succeeded' or len(evs) != 1:
                    raise RuntimeError('Assay job %d: %s %s (%d eval runs)' % (
                        job['id'], job['state'], job.get('message'), len(evs)))
                durs.append(ts(job['finished_at']) - ts(job['started_at']))
                if size == a.n:
                    run_json, verdicts = self.assay_verdicts(evs[0]['id'])
                    requests, window, inflight = self.model_stats(port)
                    cpu = proc_cpu(agent.pid) - cpu0
            hwm = proc_status(agent.pid, 'VmHWM')
            self.stop(agent)
            r['assay'] = {'job_1_s': durs[0], 'job_n_s': durs[1],
                          'rate': (a.n - 1) / (durs[1] - durs[0]), 'rate_whole_job': a.n / durs[1],
                          'agent_vmhwm_kib': hwm, 'eval_run': run_json['id'],
                          'assertions': metric(run_json, 'assertions'),
                          'passed': sum(v[0] for v in verdicts.values()),
                          'results': len(verdicts), 'requests': requests, 'window_s': window,
                          'max_in_flight': inflight, 'agent_cpu_s': cpu}
            log('run %d Assay: job %.3f s (1 example: %.3f s) -> %.1f ex/s (%.1f whole job); '
                'agent VmHWM %.1f MiB; %d of %d passed' % (
                    k + 1, durs[1], durs[0], r['assay']['rate'], a.n / durs[1], hwm / 1024,
                    r['assay']['passed'], len(verdicts)))
            # Agreement, example by example, and with this script's reading.
            mism = []
            for eid, e in sorted(ex.items()):
                pv, av = pf.get(eid), verdicts.get(eid)
                mine = None
                outs = {x[1] for x in (pv, av) if x is not None}
                if len(outs) == 1:
                    o = outs.pop()
                    mine = o is not None and all(check(o, x) for x in e['assert'])
                if pv is None or av is None or pv[0] != av[0] or (mine is not None and
                                                                   mine != av[0]):
                    mism.append({'id': eid, 'promptfoo': pv, 'assay': av, 'script': mine})
            r['mismatches'] = mism
            log('run %d: %d mismatches between promptfoo, Assay and the script; model server: '
                'promptfoo %d requests in %.3f s (at most %d at once), Assay %d in %.3f s (%d)' % (
                    k + 1, len(mism), r['promptfoo']['requests'], r['promptfoo']['window_s'],
                    r['promptfoo']['max_in_flight'], r['assay']['requests'],
                    r['assay']['window_s'], r['assay']['max_in_flight']))
            for m in mism[:20]:
                log('  mismatch', json.dumps(m))
            runs.append(r)
        self.results['server_vmhwm_kib'] = proc_status(self.server.pid, 'VmHWM')
        self.results['throughput'] = runs
        self.stop(model)
        return runs

    # -------------------------------------------------------------- part 2
    def gate(self):
        a = self.a
        model, port = self.start_model('noisy-model', noise=a.noise, seed=0)
        ds = os.path.join(a.work, 'ds%d' % a.n)
        make_dataset.write(ds, port, a.n, 1, a.concurrency)
        if not hasattr(self, 'server'):
            self.start_server()
        agent = self.start_agent('gate-agent')
        gate = '{ assertions: { max_drop: 0.05, vs: main } }'
        files = lambda seed: {'.assay.yml': self.pipeline_yaml('gate', port, 'seed-%d' % seed,
                                                                gate),
                              'evals/qa.jsonl': '@copy:' + os.path.join(ds, 'qa.jsonl')}
        t0 = time.time()
        p, job, evs = self.finish(self.push('main', files(0), 'baseline: seed 0'))
        if job['state'] != 'succeeded':
            raise RuntimeError('baseline job %s: %s' % (job['state'], job.get('message')))
        base = evs[0]
        log('baseline on main: eval run %d, assertions %s, %.1f s' % (
            base['id'], json.dumps(metric(base, 'assertions')), time.time() - t0))
        rows, t_start = [], time.time()
        n = a.reruns
        for i in range(1, a.reruns + 1):
            if i > n:
                break
            t1 = time.time()
            p, job, evs = self.finish(self.push('rerun', files(i), 'rerun %d: seed %d' % (i, i)))
            ev = evs[0] if evs else {}
            m = metric(ev, 'assertions') or {}
            row = {'seed': i, 'state': job['state'], 'message': job.get('message'),
                   'passed': ev.get('passed'), 'baseline_run_id': ev.get('baseline_run_id'),
                   'assertions': m.get('value'), 'verdicts': verdicts(ev),
                   'wall_s': time.time() - t1}
            rows.append(row)
            if job['state'] not in ('succeeded', 'failed'):
                log('rerun %d: job %s: %s' % (i, job['state'], job.get('message')))
            if i == 3:  # scale down to the budget, from the first reruns' pace
                per = (time.time() - t_start) / 3
                fit = max(3, int(a.gate_budget_s / per))
                if fit < n:
                    n = fit
                    log('reruns take %.1f s each: scaling down to %d to fit %d s' % (
                        per, n, a.gate_budget_s))
            if i == 1:
                log('rerun 1 verdicts: %s' % row['verdicts'])
            if i % 10 == 0 or row['state'] != 'succeeded':
                log('rerun %d: %s (assertions %s, baseline run %s) %s' % (
                    i, row['state'], row['assertions'], row['baseline_run_id'],
                    row['message'] or ''))
        wall = time.time() - t_start
        fails = [r for r in rows if r['state'] != 'succeeded']
        self.results['gate'] = {'reruns': len(rows), 'failed': len(fails), 'wall_s': wall,
                                'noise': a.noise, 'baseline_run': base['id'],
                                'baseline_assertions': metric(base, 'assertions'),
                                'rows': rows}
        log('gate: %d of %d reruns failed (%.1f %%), %.0f s' % (
            len(fails), len(rows), 100.0 * len(fails) / max(1, len(rows)), wall))
        # The other side: a real drop (noise raised to --drop-noise) must fail the gate.
        if a.drop_noise > 0:
            f = files(10 ** 6)
            f['.assay.yml'] = self.pipeline_yaml('gate', port, 'seed-%d-noise-%g' % (
                10 ** 6, a.drop_noise), gate)
            p, job, evs = self.finish(self.push('rerun', f, 'real drop: noise %g' % a.drop_noise))
            ev = evs[0] if evs else {}
            self.results['gate']['real_drop'] = {
                'noise': a.drop_noise, 'state': job['state'], 'message': job.get('message'),
                'assertions': (metric(ev, 'assertions') or {}).get('value')}
            log('real drop (noise %g): job %s, assertions %s: %s' % (
                a.drop_noise, job['state'], self.results['gate']['real_drop']['assertions'],
                job.get('message')))
        self.stop(agent)
        self.stop(model)


def report(res, a):
    print('== Evals: Assay vs promptfoo (%d examples, concurrency %d, model delay %g ms)' % (
        a.n, a.concurrency, a.delay_ms))
    runs = res.get('throughput') or []
    if runs:
        print('%-4s %-34s %-34s %s' % ('run', 'promptfoo ex/s (wall s) [-start-up]',
                                      'Assay ex/s (job s - 1-ex job s)', 'mismatches'))
        for r in runs:
            p, s = r['promptfoo'], r['assay']
            print('%-4d %-34s %-34s %d' % (
                r['run'], '%.1f (%.2f) [%.1f]' % (p['rate'], p['wall_s'], p['rate_minus_startup']),
                '%.1f (%.3f - %.3f)' % (s['rate'], s['job_n_s'], s['job_1_s']),
                len(r['mismatches'])))
        med = lambda f: statistics.median(f(r) for r in runs)
        pr, ar = med(lambda r: r['promptfoo']['rate']), med(lambda r: r['assay']['rate'])
        print('median: promptfoo %.1f ex/s (%.1f without its start-up), Assay %.1f ex/s '
              '(%.1f counting the whole job): Assay / promptfoo = %.2fx (target >= 2x)' % (
                  pr, med(lambda r: r['promptfoo']['rate_minus_startup']), ar,
                  med(lambda r: r['assay']['rate_whole_job']), ar / pr))
        print('model server window (first request -> last answer), median: promptfoo %.3f s '
              '(%.1f ex/s), Assay %.3f s (%.1f ex/s); ideal at %d in flight: %.3f s' % (
                  med(lambda r: r['promptfoo']['window_s']),
                  a.n / med(lambda r: r['promptfoo']['window_s']),
                  med(lambda r: r['assay']['window_s']),
                  a.n / med(lambda r: r['assay']['window_s']), a.concurrency,
                  a.n / a.concurrency * a.delay_ms / 1000))
        print('CPU (median): promptfoo process tree %.2f s (user+sys, the N-example run); '
              'assay-agent %.2f s (its own, the N-example job)' % (
                  med(lambda r: r['promptfoo']['cpu_s']), med(lambda r: r['assay']['agent_cpu_s'])))
        print('peak RSS (median): promptfoo largest process %.1f MiB, process tree %.1f MiB; '
              'assay-agent VmHWM %.1f MiB; assay-server VmHWM %.1f MiB (after all runs)' % (
                  med(lambda r: r['promptfoo']['maxrss_kib']) / 1024,
                  med(lambda r: r['promptfoo']['tree_rss_kib']) / 1024,
                  med(lambda r: r['assay']['agent_vmhwm_kib']) / 1024,
                  (res.get('server_vmhwm_kib') or 0) / 1024))
        print('passed: promptfoo %s, Assay %s; pass/fail agree on every example in every run: %s'
              % ([r['promptfoo']['passed'] for r in runs], [r['assay']['passed'] for r in runs],
                 all(not r['mismatches'] for r in runs)))
    g = res.get('gate')
    if g:
        print('gate false failures: %d of %d reruns (%.1f %%, target <= 5 %%), noise %g, '
              'baseline assertions %s; %.0f s for the reruns (%.1f s each)' % (
                  g['failed'], g['reruns'], 100.0 * g['failed'] / max(1, g['reruns']), g['noise'],
                  json.dumps(g['baseline_assertions']), g['wall_s'],
                  g['wall_s'] / max(1, g['reruns'])))
        d = g.get('real_drop')
        if d:
            print('real drop (noise %g): pass rate %s, job %s: %s' % (
                d['noise'], d['assertions'], d['state'], d['message']))
        vals = [r['assertions'] for r in g['rows'] if isinstance(r['assertions'], (int, float))]
        if vals:
            print('rerun assertion pass rates: min %.4f median %.4f max %.4f' % (
                min(vals), statistics.median(vals), max(vals)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build-dir', default=os.path.join(ROOT, 'build'))
    ap.add_argument('--work')
    ap.add_argument('--pg-port', type=int)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--n', type=int, default=1000)
    ap.add_argument('--concurrency', type=int, default=8)
    ap.add_argument('--delay-ms', type=float, default=20.0)
    ap.add_argument('--parts', default='throughput,gate')
    ap.add_argument('--reruns', type=int, default=200)
    ap.add_argument('--noise', type=float, default=0.1)
    ap.add_argument('--gate-budget-s', type=int, default=1200)
    ap.add_argument('--drop-noise', type=float, default=0.25,
                    help='noise of one last push that must fail the gate (0: skip)')
    ap.add_argument('--promptfoo-debug-log', action='store_true',
                    help="keep promptfoo's default per-run debug log file (off by default)")
    ap.add_argument('--promptfoo', default=os.path.join(HERE, 'node_modules/.bin/promptfoo'))
    ap.add_argument('--out')
    a = ap.parse_args()
    a.build_dir = os.path.abspath(a.build_dir)
    a.work = a.work or tempfile.mkdtemp(prefix='assay-bench-evals.')
    os.makedirs(a.work, exist_ok=True)
    log('work dir %s; load %s' % (a.work, open('/proc/loadavg').read().split()[:3]))
    b = Bench(a)
    rc = 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        b.start_pg()
        b.make_repo()
        parts = a.parts.split(',')
        if 'throughput' in parts:
            b.throughput()
        if 'gate' in parts:
            b.gate()
    except Exception as e:  # noqa: BLE001 -- report what was measured, then the error
        log('FAILED: %s: %s' % (type(e).__name__, e))
        rc = 1
    finally:
        b.cleanup()
    report(b.results, a)
    if a.out:
        with open(a.out, 'w') as f:
            json.dump(b.results, f, indent=1)
    return rc


if __name__ == '__main__':
    sys.exit(main())
