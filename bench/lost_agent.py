#!/usr/bin/python3
"""Lost-agent detection. See bench/README.md ("Scheduler benchmarks", 2).

A real assay-server and two real assay-agents (1 slot each); one push whose only job sleeps.
Once attempt 1 runs, wait a random 1 .. 1 + heartbeat-interval seconds (so the kill falls at
any phase of the heartbeat cycle), then SIGKILL or SIGSTOP the agent that runs it, and read
from PostgreSQL when attempt 2 was assigned and started (on the other agent). Figures:
assigned_at - kill time and started_at - kill time (server clock, same machine).

Each repetition has a fresh server, database and agents; every process started here is
stopped (a stopped one gets SIGCONT first) and every job process (the sleeps, whose pids the
job writes to a file) is killed, whatever happens.

  lost_agent.py --build-dir B --pg-port P --work DIR [--reps 3] [--modes kill,stop]
                [--series 'default=' --series 'short=--lease 6s --reconnect-grace 1s ...']
                [--out OUT.json]
"""
import argparse
import hashlib
import hmac
import json
import os
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ADMIN = 'bench-admin-token-0123456789abcdef'
AGENT_TOKEN = 'bench-agent-token'
SECRET = 'bench-secret'


def log(*a):
    print('[%s]' % time.strftime('%H:%M:%S'), *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Bench:
    def __init__(self, args):
        self.a = args
        self.procs = []  # every Popen started, in order
        self.stopped = set()  # pids we SIGSTOPped
        self.pids_file = os.path.join(args.work, 'job-pids.txt')

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
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

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
        if p.pid in self.stopped:
            p.send_signal(signal.SIGCONT)
            self.stopped.discard(p.pid)
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def kill_jobs(self):
        try:
            pids = [int(x) for x in open(self.pids_file).read().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.unlink(self.pids_file)
        except OSError:
            pass

    def cleanup(self):
        for p in reversed(self.procs):
            self.stop(p, grace=5)
        self.procs = []
        self.kill_jobs()

    # ------------------------------------------------------------------ set-up
    def make_repo(self):
        w = self.a.work
        src = os.path.join(w, 'src')
        run = lambda *c: subprocess.run(c, cwd=src, check=True, capture_output=True)
        os.makedirs(src)
        run('git', 'init', '-q', '-b', 'main')
        run('git', 'config', 'user.email', 'bench@example.invalid')
        run('git', 'config', 'user.name', 'bench')
        with open(os.path.join(src, '.assay.yml'), 'w') as f:
            # `exec`: the pid written is the sleep's own, so the clean-up can kill it.
            # The path is written into the file: steps do not inherit the agent's environment.
            f.write('jobs:\n  sleeper:\n    steps:\n'
                    '      - run: echo "$$" >> "%s"; exec sleep 600\n' % self.pids_file)
        run('git', 'add', '.assay.yml')
        run('git', 'commit', '-q', '-m', 'sleeper')
        self.sha = run('git', 'rev-parse', 'HEAD').stdout.decode().strip()
        subprocess.run(['git', 'clone', '-q', '--bare', src, os.path.join(w, 'repo.git')],
                       check=True, capture_output=True)
        self.clone_url = 'file://' + os.path.join(w, 'repo.git')

    # ------------------------------------------------------------------ one repetition
    def rep(self, series, flags, mode, i):
        d = os.path.join(self.a.work, '%s-%s-%d' % (series, mode, i))
        os.makedirs(d)
        db = 'lost_%s_%s_%d' % (series, mode, i)
        self.sql('DROP DATABASE IF EXISTS %s' % db, 'postgres')
        self.sql('CREATE DATABASE %s' % db, 'postgres')
        http, grpc = free_port(), free_port()
        base = 'http://127.0.0.1:%d' % http
        server = self.start([os.path.join(self.a.build_dir, 'server/assay-server'),
                             '--http-listen', '127.0.0.1:%d' % http,
                             '--grpc-listen', '127.0.0.1:%d' % grpc,
                             '--database-url', self.dsn(db), '--data-dir', d + '/server',
                             '--allow-shared-agent-token', '--grpc-insecure',
                             '--allow-local-repos'] + flags,  # the repository is a file:// URL
                            d + '/server.log',
                            # Tokens through the environment: never on a command line.
                            dict(os.environ, ASSAY_ADMIN_TOKEN=ADMIN,
                                 ASSAY_AGENT_TOKEN=AGENT_TOKEN))
        hb = 5.0
        for k, v in zip(flags, flags[1:]):
            if k == '--heartbeat-interval':
                hb = float(v.rstrip('ms')) / (1000 if v.endswith('ms') else 1)

        def healthz():
            try:
                return json.loads(self.http('GET', base + '/healthz')[1])
            except (OSError, ValueError):
                return None
        self.wait('server /healthz', healthz, 30)
        st, body = self.http('POST', base + '/api/v1/repos', json.dumps(
            {'name': 'bench/sleeper', 'clone_url': self.clone_url,
             'webhook_secret': SECRET}).encode(), {'Authorization': 'Bearer ' + ADMIN})
        if st != 201:
            raise RuntimeError('add repo: %d %s' % (st, body))
        env = dict(os.environ, ASSAY_TOKEN=AGENT_TOKEN)
        # As root, the agent needs to be told whom jobs run as; the bench's job is trusted.
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
                                          'full_name': 'bench/sleeper'}}).encode()
        sig = 'sha256=' + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        st, resp = self.http('POST', base + '/hooks/github', body, {
            'X-GitHub-Event': 'push', 'X-GitHub-Delivery': 'lost-%s-%s-%d' % (series, mode, i),
            'X-Hub-Signature-256': sig, 'Content-Type': 'application/json'})
        if st // 100 != 2:
            raise RuntimeError('push: %d %s' % (st, resp))
        row = self.wait('attempt 1 running', lambda: self.sql(
            "SELECT a.job_id, g.name FROM job_attempts a JOIN agents g ON g.id = a.agent_id "
            "WHERE a.attempt = 1 AND a.state = 'running'", db), 60)[0]
        job_id, victim = int(row[0]), row[1]
        delay = random.uniform(1.0, 1.0 + hb)
        time.sleep(delay)
        sig_num = signal.SIGKILL if mode == 'kill' else signal.SIGSTOP
        t_kill = time.time()
        agents[victim].send_signal(sig_num)
        if mode == 'stop':
            self.stopped.add(agents[victim].pid)
        lease = 25.0
        for k, v in zip(flags, flags[1:]):
            if k == '--lease':
                lease = float(v.rstrip('s'))
        r2 = self.wait('attempt 2 started', lambda: [
            r for r in self.sql(
                "SELECT extract(epoch from a.assigned_at), extract(epoch from a.started_at), "
                "g.name FROM job_attempts a JOIN agents g ON g.id = a.agent_id "
                "WHERE a.job_id = %d AND a.attempt = 2" % job_id, db) if r[1] != ''],
            lease + 60, step=0.1)[0]
        a1 = self.sql("SELECT state, coalesce(message, ''), extract(epoch from finished_at) "
                      "FROM job_attempts WHERE job_id = %d AND attempt = 1" % job_id, db)[0]
        out = {'series': series, 'mode': mode, 'rep': i, 'heartbeat_s': hb, 'lease_s': lease,
               'kill_after_running_s': round(delay, 3),
               'lost_s': round(float(a1[2]) - t_kill, 3) if a1[2] else None,
               'assigned_s': round(float(r2[0]) - t_kill, 3),
               'started_s': round(float(r2[1]) - t_kill, 3),
               'attempt1': {'state': a1[0], 'message': a1[1]},
               'victim': victim, 'attempt2_agent': r2[2]}
        log('%s/%s #%d: %s %s after %.1f s of running; attempt 1 %s (%s) at +%.2f s; '
            'attempt 2 on %s assigned +%.2f s, started +%.2f s' % (
                series, mode, i, 'SIGKILL' if mode == 'kill' else 'SIGSTOP', victim, delay,
                a1[0], a1[1], out['lost_s'] or -1, r2[2], out['assigned_s'], out['started_s']))
        self.cleanup()
        self.sql('DROP DATABASE IF EXISTS %s' % db, 'postgres')
        return out


def summary(rows):
    out = []
    keys = []
    for r in rows:
        k = (r['series'], r['mode'])
        if k not in keys:
            keys.append(k)
    for k in keys:
        rs = [r for r in rows if (r['series'], r['mode']) == k]
        a = sorted(r['assigned_s'] for r in rs)
        s = sorted(r['started_s'] for r in rs)
        out.append({'series': k[0], 'mode': k[1], 'n': len(rs), 'flags': rs[0].get('flags', ''),
                    'assigned': [a[0], statistics.median(a), a[-1]],
                    'started': [s[0], statistics.median(s), s[-1]]})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build-dir', required=True)
    ap.add_argument('--pg-port', type=int, required=True)
    ap.add_argument('--work', required=True)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--modes', default='kill,stop')
    ap.add_argument('--series', action='append',
                    help="NAME=FLAGS (assay-server flags); default: 'default='")
    ap.add_argument('--out')
    a = ap.parse_args()
    series = []
    for s in a.series or ['default=']:
        name, _, flags = s.partition('=')
        series.append((name, shlex.split(flags)))
    b = Bench(a)
    rows = []
    rc = 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        b.make_repo()
        for name, flags in series:
            for mode in a.modes.split(','):
                for i in range(a.reps):
                    try:
                        r = b.rep(name, flags, mode, i)
                        r['flags'] = ' '.join(flags) or '(defaults)'
                        rows.append(r)
                    except RuntimeError as e:
                        log('%s/%s #%d failed: %s' % (name, mode, i, e))
                        rc = 1
                        b.cleanup()
    finally:
        b.cleanup()
    summ = summary(rows)
    print('== lost-agent detection (kill -> attempt 2 on the other agent), seconds')
    print('%-8s %-5s %-56s %3s  %-20s  %-20s' % ('series', 'mode', 'server flags', 'n',
                                                 'assigned min/med/max', 'started min/med/max'))
    for s in summ:
        print('%-8s %-5s %-56s %3d  %-20s  %-20s' % (
            s['series'], s['mode'], s['flags'], s['n'],
            '/'.join('%.2f' % v for v in s['assigned']),
            '/'.join('%.2f' % v for v in s['started'])))
    if a.out:
        with open(a.out, 'w') as f:
            json.dump({'rows': rows, 'summary': summ}, f, indent=1)
    return rc


if __name__ == '__main__':
    sys.exit(main())
