#!/usr/bin/python3
"""Checkpoint resume after a lost agent (issue 10). See bench/README.md ("Checkpoint resume").

A real assay-server and two real assay-agents (1 slot each, `--executors host`); one push whose
only job is a `train:` step (retry: {max: 1, on: [agent_lost]}) running a dependency-free
train.py committed in the bench's repository: one step every STEP_MS, a metrics line per step,
a checkpoint directory (state.json with CKPT_KB KiB of random payload) every EVERY steps,
renamed into place. Once attempt 1's loss series has reached a random step in [LO, HI] (read
from train_metrics), SIGKILL the agent that runs it and the trainer (by the pid and process
group it wrote), and read from PostgreSQL, against the kill time (one machine, one clock):

  assigned / started   attempt 2's assigned_at / started_at (job_attempts), as lost_agent.py
  resumed (at)         the `at` of attempt 2's first loss point: the agent's read time of the
                       metrics file (it reads every second), so up to ~1 s late
  resumed (trainer)    the trainer's own clock at its first step of attempt 2 (trace file)
  steps lost           max step of attempt 1 - (attempt 2's first step - 1): steps computed
                       twice; from train_metrics (what the server had) and from the trace file
                       (what the killed trainer had really computed)
  checkpoint           the newest checkpoint of attempt 1 at the kill (train_checkpoints) and
                       the one restored (train_checkpoint_reads): step, files, bytes

Each repetition has a fresh server, database and agents; every process started here is
stopped and every trainer killed by the pid it wrote, whatever happens. Waits are bounded.
Figures are printed (JSON with --out, and a table), never asserted.

  train_resume.py --build-dir B [--pg-port P] [--work DIR] [--reps 3]
                  [--series 'default=' --series 'short=--lease 6s ...'] [--out OUT.json]

Without --pg-port it starts a PostgreSQL of its own (deploy/lib/pg.sh, durable defaults) under
the work directory and stops it at the end.
"""
import argparse
import hashlib
import hmac
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN = 'bench-admin-token-0123456789abcdef'
AGENT_TOKEN = 'bench-agent-token'
SECRET = 'bench-secret'
SHORT_FLAGS = '--lease 6s --reconnect-grace 1s --heartbeat-interval 2s'  # as bench/sched.sh

# The trainer committed in the bench's repository. Standard library only.
TRAIN_PY = r'''
import hashlib, json, math, os, random, shutil, sys, time

p = json.loads(os.environ.get("ASSAY_PARAMS") or "{}")
steps, step_ms = int(p.get("steps", 400)), float(p.get("step_ms", 50))
every, ckpt_kb = int(p.get("every", 20)), int(p.get("ckpt_kb", 256))
ckdir = os.environ["ASSAY_CHECKPOINT_DIR"]
trace = open(p["trace_file"], "a", buffering=1) if p.get("trace_file") else None


def note(*what):  # "PID UNIX_TIME WHAT N", one line, flushed
    if trace:
        trace.write("%d %.6f %s\n" % (os.getpid(), time.time(), " ".join(map(str, what))))


if p.get("pid_file"):
    with open(p["pid_file"], "a") as f:
        f.write("%d %d\n" % (os.getpid(), os.getpgid(0)))
seed = os.urandom(16)
first = 1
resume = os.environ.get("ASSAY_RESUME_STEP")
if resume:
    n = int(resume)
    try:
        with open(os.path.join(ckdir, "step-%d" % n, "state.json")) as f:
            st = json.load(f)
        ok = st["step"] == n and hashlib.sha256(
            bytes.fromhex(st["payload"])).hexdigest() == st["sha256"]
    except (OSError, ValueError, KeyError) as e:
        ok = False
        print("train.py: cannot load step-%d: %s" % (n, e), file=sys.stderr)
    if not ok:
        note("bad-checkpoint", n)
        sys.exit(3)
    first = n + 1
    note("resume", n)
else:
    note("start", 0)

with open(os.environ["ASSAY_METRICS_FILE"], "a") as mf:
    for s in range(first, steps + 1):
        time.sleep(step_ms / 1000.0)
        loss = 0.3 + 4.0 * math.exp(-s / 150.0) + 0.05 * math.sin(s)
        mf.write(json.dumps({"step": s, "loss": round(loss, 6)}) + "\n")
        mf.flush()
        note("step", s)
        if s % every == 0 and s < steps:
            payload = random.Random(seed + s.to_bytes(8, "big")).randbytes(ckpt_kb * 512)
            tmp = os.path.join(ckdir, ".tmp-%d" % s)
            os.makedirs(tmp)
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump({"step": s, "loss": loss, "payload": payload.hex(),
                           "sha256": hashlib.sha256(payload).hexdigest()}, f)
            os.rename(tmp, os.path.join(ckdir, "step-%d" % s))
            note("ckpt", s)
            for old in os.listdir(ckdir):  # keep the newest three
                if old.startswith("step-") and int(old[5:]) <= s - 3 * every:
                    shutil.rmtree(os.path.join(ckdir, old), ignore_errors=True)

with open(os.path.join(os.environ["ASSAY_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"steps": steps, "loss": loss}, f)
note("done", steps)
'''


def log(*a):
    print('[%s]' % time.strftime('%H:%M:%S'), *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def flag_seconds(flags, name, default):
    for k, v in zip(flags, flags[1:]):
        if k == name:
            return float(v.rstrip('ms')) / (1000 if v.endswith('ms') else 1)
    return default


class Bench:
    def __init__(self, args):
        self.a = args
        self.procs = []  # every Popen started, in order
        self.pids_file = os.path.join(args.work, 'trainer-pids.txt')
        self.trace_file = os.path.join(args.work, 'trace.txt')
        self.pg_dir = None

    # ------------------------------------------------------------------ helpers
    def dsn(self, db='postgres'):
        return 'postgresql://postgres@127.0.0.1:%d/%s' % (self.a.pg_port, db)

    def sql(self, q, db):
        r = subprocess.run(['psql', '-XAtq', '-F', '|', '-v', 'ON_ERROR_STOP=1', '-c', q,
                            self.dsn(db)], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError('psql: ' + r.stderr.strip())
        return [l.split('|') for l in r.stdout.splitlines() if l]

    def http(self, method, url, body=None, headers=None, timeout=5):
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode(errors='replace')
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors='replace')

    def wait(self, what, fn, timeout, step=0.05):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(step)
        raise RuntimeError('timed out after %ss waiting for %s' % (timeout, what))

    def start(self, argv, logpath, env=None):
        f = open(logpath, 'ab')
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env)
        f.close()
        self.procs.append(p)
        return p

    def stop(self, p, grace=10):
        if p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def kill_trainers(self):
        """SIGKILL every trainer (and its process group) that wrote its pid and still runs.

        A pid is killed only while /proc says it runs train.py, so a pid reused since is safe."""
        try:
            rows = [l.split() for l in open(self.pids_file).read().splitlines() if l.strip()]
        except OSError:
            rows = []

        def is_trainer(pid):
            try:
                return b'train.py' in open('/proc/%d/cmdline' % pid, 'rb').read()
            except OSError:
                return False
        for row in rows:
            pid, pgid = int(row[0]), int(row[1])
            if pgid != os.getpgid(0) and is_trainer(pgid):  # the step's shell leads the group
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if is_trainer(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return len(rows)

    def cleanup(self):
        for p in reversed(self.procs):
            self.stop(p, grace=5)
        self.procs = []
        self.kill_trainers()
        try:
            os.unlink(self.pids_file)
        except OSError:
            pass

    def pg(self, fn, *args):
        cmd = 'source %s; %s %s' % (shlex.quote(os.path.join(ROOT, 'deploy/lib/pg.sh')), fn,
                                    ' '.join(shlex.quote(str(a)) for a in args))
        return subprocess.run(['bash', '-c', cmd], capture_output=True, text=True, timeout=120)

    def pg_start(self):
        self.pg_dir = os.path.join(self.a.work, 'pg')
        self.a.pg_port = free_port()
        r = self.pg('pg_start', self.pg_dir, self.a.pg_port)
        if r.returncode != 0:
            raise RuntimeError('PostgreSQL did not start: ' + r.stderr.strip())
        log('PostgreSQL %s on port %d (%s)' % (
            self.sql('SHOW server_version', 'postgres')[0][0], self.a.pg_port, self.pg_dir))

    def pg_stop(self):
        if self.pg_dir:
            self.pg('pg_stop', self.pg_dir)

    # ------------------------------------------------------------------ set-up
    def make_repo(self):
        w = self.a.work
        src = os.path.join(w, 'src')
        run = lambda *c: subprocess.run(c, cwd=src, check=True, capture_output=True)
        os.makedirs(src)
        run('git', 'init', '-q', '-b', 'main')
        run('git', 'config', 'user.email', 'bench@example.invalid')
        run('git', 'config', 'user.name', 'bench')
        with open(os.path.join(src, 'train.py'), 'w') as f:
            f.write(TRAIN_PY.lstrip())
        # The trainer's bookkeeping paths go into params: steps do not inherit the agent's
        # environment. JSON strings are YAML strings.
        params = {'steps': self.a.steps, 'step_ms': self.a.step_ms, 'every': self.a.every,
                  'ckpt_kb': self.a.ckpt_kb, 'pid_file': self.pids_file,
                  'trace_file': self.trace_file}
        with open(os.path.join(src, '.assay.yml'), 'w') as f:
            f.write('jobs:\n'
                    '  ft:\n'
                    '    retry: { max: 1, on: [agent_lost] }\n'
                    '    steps:\n'
                    '      - name: fit\n'
                    '        train:\n'
                    '          command: python3 train.py\n'
                    '          model: bench\n'
                    '          params: %s\n'
                    '          checkpoint_interval: %s\n' % (json.dumps(params),
                                                           self.a.checkpoint_interval))
        run('git', 'add', '.assay.yml', 'train.py')
        run('git', 'commit', '-q', '-m', 'trainer')
        self.sha = run('git', 'rev-parse', 'HEAD').stdout.decode().strip()
        subprocess.run(['git', 'clone', '-q', '--bare', src, os.path.join(w, 'repo.git')],
                       check=True, capture_output=True)
        self.clone_url = 'file://' + os.path.join(w, 'repo.git')

    def trace(self):
        """[(pid, time, what, n)] of the trainers' trace file."""
        out = []
        try:
            for l in open(self.trace_file).read().splitlines():
                f = l.split()
                if len(f) == 4:
                    out.append((int(f[0]), float(f[1]), f[2], int(f[3])))
        except OSError:
            pass
        return out

    # ------------------------------------------------------------------ one repetition
    def rep(self, series, flags, i):
        d = os.path.join(self.a.work, '%s-%d' % (series, i))
        os.makedirs(d)
        for p in (self.trace_file, self.pids_file):
            if os.path.exists(p):
                os.unlink(p)
        db = 'train_%s_%d' % (series, i)
        self.sql('DROP DATABASE IF EXISTS %s' % db, 'postgres')
        self.sql('CREATE DATABASE %s' % db, 'postgres')
        http, grpc = free_port(), free_port()
        base = 'http://127.0.0.1:%d' % http
        self.start([os.path.join(self.a.build_dir, 'server/assay-server'),
                    '--http-listen', '127.0.0.1:%d' % http,
                    '--grpc-listen', '127.0.0.1:%d' % grpc,
                    '--database-url', self.dsn(db), '--data-dir', d + '/server',
                    '--allow-shared-agent-token', '--grpc-insecure',
                    '--allow-local-repos'] + flags,  # the repository is a file:// URL
                   d + '/server.log',
                   # Tokens through the environment: never on a command line.
                   dict(os.environ, ASSAY_ADMIN_TOKEN=ADMIN, ASSAY_AGENT_TOKEN=AGENT_TOKEN))
        lease = flag_seconds(flags, '--lease', 25.0)

        def healthz():
            try:
                return json.loads(self.http('GET', base + '/healthz')[1])
            except (OSError, ValueError):
                return None
        self.wait('server /healthz', healthz, 30)
        admin = {'Authorization': 'Bearer ' + ADMIN}
        st, body = self.http('POST', base + '/api/v1/repos', json.dumps(
            {'name': 'bench/train', 'clone_url': self.clone_url,
             'webhook_secret': SECRET}).encode(), admin)
        if st != 201:
            raise RuntimeError('add repo: %d %s' % (st, body))
        env = dict(os.environ, ASSAY_TOKEN=AGENT_TOKEN)
        # As root, the agent needs to be told whom jobs run as; the bench's job is trusted.
        # `--executors host`: the trainer's pid is a pid of this machine (the sandbox has its
        # own PID namespace and a private /tmp), so it can be killed and can write its trace.
        job_user = ['--job-user', 'root'] if os.geteuid() == 0 else []
        agents = {}
        for name in ('a1', 'a2'):
            agents[name] = self.start(
                [os.path.join(self.a.build_dir, 'agent/assay-agent'), '--server',
                 '127.0.0.1:%d' % grpc, '--grpc-insecure', '--name', name, '--slots', '1',
                 '--work-dir', '%s/%s' % (d, name), '--kill-grace', '1s',
                 '--executors', 'host', '--allow-local-repos'] + job_user,
                '%s/%s.log' % (d, name), env)
        self.wait('2 agents', lambda: (healthz() or {}).get('agents') == 2, 30)

        body = json.dumps({'ref': 'refs/heads/main', 'before': '0' * 40, 'after': self.sha,
                           'repository': {'clone_url': self.clone_url,
                                          'full_name': 'bench/train'}}).encode()
        sig = 'sha256=' + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        st, resp = self.http('POST', base + '/hooks/github', body, {
            'X-GitHub-Event': 'push', 'X-GitHub-Delivery': 'train-%s-%d' % (series, i),
            'X-Hub-Signature-256': sig, 'Content-Type': 'application/json'})
        if st // 100 != 2:
            raise RuntimeError('push: %d %s' % (st, resp))
        try:
            def running():
                if self.sql("SELECT 1 FROM jobs WHERE finished_at IS NOT NULL", db):
                    raise RuntimeError('the job ended before it ran')
                return self.sql(
                    "SELECT a.job_id, g.name FROM job_attempts a JOIN agents g "
                    "ON g.id = a.agent_id WHERE a.attempt = 1 AND a.state = 'running'", db)
            row = self.wait('attempt 1 running', running, 60)[0]
        except RuntimeError as e:
            jobs = self.sql("SELECT id, state FROM jobs ORDER BY id", db)
            why = [self.http('GET', base + '/api/v1/jobs/%s' % j[0], None, admin)[1][:600]
                   for j in jobs]
            raise RuntimeError('%s; jobs %s: %s' % (e, jobs, why))
        job_id, victim = int(row[0]), row[1]

        # ---- kill once the server has seen attempt 1 reach a random step
        target = random.randint(self.a.kill_lo, self.a.kill_hi)
        run_s = self.a.steps * self.a.step_ms / 1000.0

        def reached():
            r = self.sql("SELECT coalesce(max(step), 0), (SELECT finished_at IS NOT NULL "
                         "FROM jobs WHERE id = %d) FROM train_metrics WHERE job_id = %d AND "
                         "attempt = 1 AND name = 'loss'" % (job_id, job_id), db)[0]
            if r[1] == 't':
                raise RuntimeError('the job finished before step %d' % target)
            return int(r[0]) >= target
        self.wait('attempt 1 at step %d' % target, reached, run_s + 60, step=0.1)
        t_kill = time.time()
        agents[victim].send_signal(signal.SIGKILL)
        self.kill_trainers()
        kill_ms = (time.time() - t_kill) * 1000

        def a1_state():
            r = self.sql("SELECT coalesce(max(step), 0) FROM train_metrics WHERE job_id = %d "
                         "AND attempt = 1 AND name = 'loss'" % job_id, db)[0]
            c = self.sql("SELECT coalesce(max(step), 0), count(*) FROM train_checkpoints "
                         "WHERE job_id = %d AND attempt = 1" % job_id, db)[0]
            return int(r[0]), int(c[0]), int(c[1])
        at_kill = a1_state()

        # ---- attempt 2: assigned, started, first metrics point
        r2 = self.wait('attempt 2 started', lambda: [
            r for r in self.sql(
                "SELECT extract(epoch from a.assigned_at), extract(epoch from a.started_at), "
                "g.name FROM job_attempts a JOIN agents g ON g.id = a.agent_id "
                "WHERE a.job_id = %d AND a.attempt = 2" % job_id, db) if r[1] != ''],
            lease + 60, step=0.1)[0]
        at_a2 = a1_state()  # nothing of attempt 1 can have come in after this
        first = self.wait('attempt 2 first metrics point', lambda: self.sql(
            "SELECT step, extract(epoch from at) FROM train_metrics WHERE job_id = %d AND "
            "attempt = 2 AND name = 'loss' ORDER BY step LIMIT 1" % job_id, db), 120,
            step=0.1)[0]
        # Now, before attempt 2's own checkpoints prune it (two are kept per step).
        restored = self.sql(
            "SELECT c.step, c.attempt, c.files, c.bytes FROM train_checkpoint_reads r "
            "JOIN train_checkpoints c ON c.id = r.checkpoint_id WHERE r.job_id = %d "
            "ORDER BY c.step DESC LIMIT 1" % job_id, db)

        # ---- the job's end
        fin = self.wait('job finished', lambda: [r for r in self.sql(
            "SELECT state FROM jobs WHERE id = %d AND finished_at IS NOT NULL" % job_id, db)],
            run_s + 120, step=0.2)[0]
        a1 = self.sql("SELECT state, coalesce(message, ''), extract(epoch from finished_at) "
                      "FROM job_attempts WHERE job_id = %d AND attempt = 1" % job_id, db)[0]
        runs = self.sql("SELECT attempt, coalesce(resumed_from::text, 'null'), "
                        "coalesce(model_version_id::text, 'null') FROM train_runs "
                        "WHERE job_id = %d ORDER BY attempt" % job_id, db)
        logs = {}
        for att in (1, 2):
            logs[att] = b''.join(bytes.fromhex(r[0]) for r in self.sql(
                "SELECT encode(data, 'hex') FROM log_chunks WHERE job_id = %d AND attempt = %d "
                "ORDER BY seq" % (job_id, att), db)).decode(errors='replace')
        joblog = logs[2]

        def train_lines(text):
            return [l.strip() for l in text.splitlines()
                    if 'assay: train:' in l or 'assay: warning: train' in l or 'train.py:' in l]
        saved = {att: [int(x) for x in re.findall(r'assay: train: checkpoint step (\d+) saved',
                                                  logs[att])] for att in (1, 2)}
        tr = self.trace()
        pids = []
        for pid, _, _, _ in tr:
            if pid not in pids:
                pids.append(pid)
        t1 = [x for x in tr if pids and x[0] == pids[0]]
        t2 = [x for x in tr if len(pids) > 1 and x[0] == pids[1]]
        a1_trainer_max = max([x[3] for x in t1 if x[2] == 'step'] or [0])
        t2_start = next((x for x in t2 if x[2] in ('start', 'resume', 'bad-checkpoint')), None)
        t2_step = next((x for x in t2 if x[2] == 'step'), None)
        first_step = int(first[0])
        m = re.search(r'restored checkpoint step (\d+).*?([\d.]+) MiB, ([\d.]+) MiB downloaded',
                      joblog)
        out = {
            'series': series, 'rep': i, 'lease_s': lease, 'kill_target_step': target,
            'victim': victim, 'attempt2_agent': r2[2], 'kill_ms': round(kill_ms, 1),
            'assigned_s': round(float(r2[0]) - t_kill, 3),
            'started_s': round(float(r2[1]) - t_kill, 3),
            'trainer2_started_s': round(t2_start[1] - t_kill, 3) if t2_start else None,
            'resumed_s': round(float(first[1]) - t_kill, 3),
            'resumed_trainer_s': round(t2_step[1] - t_kill, 3) if t2_step else None,
            'attempt1_max_step_db': at_a2[0], 'attempt1_max_step_trainer': a1_trainer_max,
            'attempt2_first_step': first_step,
            'steps_lost': at_a2[0] - (first_step - 1),
            'steps_lost_trainer': a1_trainer_max - (first_step - 1),
            'newest_checkpoint_at_kill': at_kill[1] if at_kill[2] else None,
            'newest_checkpoint_before_attempt2': at_a2[1] if at_a2[2] else None,
            'attempt1_checkpoints_kept': at_a2[2],
            'restored': ({'step': int(restored[0][0]), 'saved_by_attempt': int(restored[0][1]),
                          'files': int(restored[0][2]), 'bytes': int(restored[0][3])}
                         if restored else None),
            'restore_log': ({'step': int(m.group(1)), 'mib': float(m.group(2)),
                             'downloaded_mib': float(m.group(3))} if m else None),
            'train_runs': [{'attempt': int(r[0]), 'resumed_from': r[1], 'model_version_id': r[2]}
                           for r in runs],
            'job_state': fin[0],
            'attempt1': {'state': a1[0], 'message': a1[1],
                         'finished_s': round(float(a1[2]) - t_kill, 3) if a1[2] else None},
            'checkpoints_saved': {'attempt1': saved[1], 'attempt2': saved[2]},
            'train_log': {'attempt1': train_lines(logs[1])[:8],
                          'attempt2': train_lines(logs[2])[:8]},
        }
        odd = []
        rs = out['restored']['step'] if out['restored'] else None
        if rs is None or first_step != rs + 1:
            odd.append('attempt 2 began at step %d; restored checkpoint %s' % (first_step, rs))
        ra2 = [r for r in out['train_runs'] if r['attempt'] == 2]
        if not ra2 or ra2[0]['resumed_from'] != str(rs):
            odd.append('train_runs attempt 2: %s' % (ra2 or 'no row'))
        if fin[0] != 'succeeded':
            odd.append('job %s' % fin[0])
        out['odd'] = odd
        log('%s #%d: SIGKILL %s at step %d (server had %d, trainer %d; newest checkpoint %s); '
            'attempt 2 on %s assigned +%.2f s, started +%.2f s, trainer +%s s, first point '
            '(step %d) at +%.2f s (trainer +%s s); restored %s; lost %d steps (trainer %d); '
            'job %s; checkpoints saved: attempt 1 %s, attempt 2 %s%s' % (
                series, i, victim, target, out['attempt1_max_step_db'], a1_trainer_max,
                out['newest_checkpoint_before_attempt2'], r2[2], out['assigned_s'], out['started_s'],
                out['trainer2_started_s'], first_step, out['resumed_s'],
                out['resumed_trainer_s'], out['restored'], out['steps_lost'],
                out['steps_lost_trainer'], fin[0], saved[1], saved[2], ('; ODD: ' + '; '.join(odd)) if odd else ''))
        self.cleanup()
        if os.path.exists(self.trace_file):
            shutil.move(self.trace_file, os.path.join(d, 'trace.txt'))
        self.sql('DROP DATABASE IF EXISTS %s' % db, 'postgres')
        return out


def p50_max(vals):
    v = sorted(x for x in vals if x is not None)
    if not v:
        return None
    return [v[0], statistics.median(v), v[-1]]


FIGURES = [  # key, label, format
    ('assigned_s', 'kill -> attempt 2 assigned (s)', '%.2f'),
    ('started_s', 'kill -> attempt 2 started (s)', '%.2f'),
    ('trainer2_started_s', 'kill -> trainer 2 running, checkpoint loaded (s)', '%.2f'),
    ('resumed_trainer_s', 'kill -> first step of attempt 2, trainer clock (s)', '%.2f'),
    ('resumed_s', 'kill -> first point of attempt 2, train_metrics.at (s)', '%.2f'),
    ('steps_lost', 'steps lost (computed twice), server view', '%.0f'),
    ('steps_lost_trainer', 'steps lost (computed twice), trainer view', '%.0f'),
    ('restored_kib', 'restored checkpoint (KiB)', '%.0f'),
]


def summary(rows):
    out = []
    for name in dict.fromkeys(r['series'] for r in rows):
        rs = [r for r in rows if r['series'] == name]
        for r in rs:
            r['restored_kib'] = r['restored']['bytes'] / 1024 if r['restored'] else None
        s = {'series': name, 'n': len(rs), 'flags': rs[0].get('flags', '')}
        for k, _, _ in FIGURES:
            s[k] = p50_max(r[k] for r in rs)
        s['odd'] = sum(1 for r in rs if r['odd'])
        out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build-dir', required=True)
    ap.add_argument('--pg-port', type=int, help='a running PostgreSQL (default: start one)')
    ap.add_argument('--work', help='work directory (default: a new one under /tmp)')
    ap.add_argument('--keep', action='store_true', help='keep the work directory')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--series', action='append',
                    help="NAME=FLAGS (assay-server flags); default: 'default=' and "
                         "'short=%s'" % SHORT_FLAGS)
    ap.add_argument('--steps', type=int, default=400)
    ap.add_argument('--step-ms', type=int, default=50)
    ap.add_argument('--every', type=int, default=20, help='checkpoint every N steps')
    ap.add_argument('--ckpt-kb', type=int, default=256, help='checkpoint size, KiB')
    ap.add_argument('--checkpoint-interval', default='1s')
    ap.add_argument('--kill-at', default='120,300', help='LO,HI: kill at a random step in it')
    ap.add_argument('--out')
    a = ap.parse_args()
    a.build_dir = os.path.abspath(a.build_dir)
    a.kill_lo, a.kill_hi = (int(x) for x in a.kill_at.split(','))
    if not 0 < a.kill_lo <= a.kill_hi < a.steps:
        ap.error('--kill-at must lie inside 1 .. --steps - 1')
    made_work = a.work is None
    a.work = os.path.abspath(a.work or tempfile.mkdtemp(prefix='assay-train-'))
    os.makedirs(a.work, exist_ok=True)
    os.chmod(a.work, 0o755)  # PostgreSQL runs as postgres under it when we are root
    series = []
    for s in a.series or ['default=', 'short=' + SHORT_FLAGS]:
        name, _, flags = s.partition('=')
        series.append((name, shlex.split(flags)))
    b = Bench(a)
    rows = []
    rc = 0
    t0 = time.time()
    load = open('/proc/loadavg').read().split()[:3]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if a.pg_port is None:
            b.pg_start()
        b.make_repo()
        log('work dir %s; load %s' % (a.work, ' '.join(load)))
        for name, flags in series:
            for i in range(a.reps):
                try:
                    r = b.rep(name, flags, i)
                    r['flags'] = ' '.join(flags) or '(defaults)'
                    rows.append(r)
                except RuntimeError as e:
                    log('%s #%d failed: %s' % (name, i, e))
                    rc = 1
                    b.cleanup()
    finally:
        b.cleanup()
        b.pg_stop()
    wall = time.time() - t0
    summ = summary(rows)
    print('== checkpoint resume after SIGKILL of the training agent: min/med/max over n '
          '(%d steps x %d ms, checkpoint every %d steps, %d KiB, interval %s)' % (
              a.steps, a.step_ms, a.every, a.ckpt_kb, a.checkpoint_interval))
    for s in summ:
        print('-- %s (%s), n=%d%s' % (s['series'], s['flags'], s['n'],
                                      ', %d with odd rows (see JSON)' % s['odd'] if s['odd']
                                      else ''))
        for k, label, fmt in FIGURES:
            v = s[k]
            print('   %-56s %s' % (label, '/'.join(fmt % x for x in v) if v else '-'))
    print('wall time %.0f s; load at start %s' % (wall, ' '.join(load)))
    if a.out:
        with open(a.out, 'w') as f:
            json.dump({'rows': rows, 'summary': summ, 'wall_s': round(wall, 1),
                       'load_start': load}, f, indent=1)
    if made_work and not a.keep and rc == 0:
        shutil.rmtree(a.work, ignore_errors=True)
    else:
        log('work dir kept: %s' % a.work)
    return rc


if __name__ == '__main__':
    sys.exit(main())
