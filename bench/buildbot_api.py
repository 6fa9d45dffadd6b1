#!/usr/bin/python3
"""Helper for bench/buildbot_api.sh (stdlib only; psycopg2 only for a PostgreSQL load).

  load    DB_URL N        fill a Buildbot 3.7 database (schema from `buildbot create-master`)
                          with N finished builds, shaped like assay-bench-dashboard's pipelines
  measure BASE OUT VARIANT...   time GET BASE+path, 20 warm-up + 200 timed calls per variant
  login   BASE USER PASSWORD    print an Assay session cookie, exit 1 if the login fails
  table   JSON...               print the results of `measure` side by side

A VARIANT is "label=path". Every call opens a new TCP connection (`Connection: close`), as
Assay's bench client does, and sends `Accept: application/json` as Buildbot's UI does (without
it, Buildbot pretty-prints). Time: from before connect() to the last body byte read. Nearest-rank
p50/p95/max, the same as bench/dashboard_bench.cc.
"""
import hashlib
import http.client
import json
import math
import os
import sys
import time
import urllib.parse

N_BUILDERS = 10  # stand-ins for Assay's 10 repositories: app0 .. app9
BRANCHES = ['main', 'dev', 'feature-a', 'feature-b', 'release']
EVENTS = ['push', 'pull_request', 'schedule', 'manual']
SUCCESS, FAILURE = 0, 2  # buildbot.process.results


def name_hash(name):  # buildbot.db.base.DBConnectorComponent.hashColumns, one column
    return hashlib.sha1(name.encode()).hexdigest()


def rows(n, now):
    """The tables' rows. Build g (1..n) mirrors Assay's pipeline g: repository/builder g % 10,
    branch (g / 3) % 5, event (g / 7) % 4, failed when g % 20 == 0, started n - g seconds
    ago, 30 s long."""
    builders = [(i + 1, 'app%d' % i, None, name_hash('app%d' % i)) for i in range(N_BUILDERS)]
    out = {
        'masters': [(1, 'old-master:/srv/bb', name_hash('old-master:/srv/bb'), 0, now - n)],
        'workers': [(1, 'w1', '{}', 0, 0)],
        'builders': builders,
        'buildsets': [], 'buildrequests': [], 'builds': [], 'build_properties': [],
    }
    for g in range(1, n + 1):
        b = g % N_BUILDERS
        res = FAILURE if g % 20 == 0 else SUCCESS
        t = now - (n - g)
        branch = BRANCHES[(g // 3) % 5]
        event = EVENTS[(g // 7) % 4]
        rev = hashlib.md5(str(g).encode()).hexdigest() + '00000000'
        out['buildsets'].append((g, None, 'The GitHub event: %s' % event, t, 1, t + 30, res,
                                 None, None))
        out['buildrequests'].append((g, g, b + 1, 0, 1, res, t, t + 30, 0))
        out['builds'].append((g, g // N_BUILDERS + 1, b + 1, g, 1, 1, t, t + 30,
                              'failed' if res else 'build successful', res))
        for k, v in (('branch', branch), ('revision', rev),
                     ('repository', 'https://git.example/acme/app%d' % b), ('event', event),
                     ('buildername', 'app%d' % b), ('workername', 'w1')):
            out['build_properties'].append((g, k, json.dumps(v), 'bench'))
    return out


COLUMNS = {
    'masters': 'id, name, name_hash, active, last_active',
    'workers': 'id, name, info, paused, graceful',
    'builders': 'id, name, description, name_hash',
    'buildsets': 'id, external_idstring, reason, submitted_at, complete, complete_at, results, '
                 'parent_buildid, parent_relationship',
    'buildrequests': 'id, buildsetid, builderid, priority, complete, results, submitted_at, '
                     'complete_at, waited_for',
    'builds': 'id, number, builderid, buildrequestid, workerid, masterid, started_at, '
              'complete_at, state_string, results',
    'build_properties': 'buildid, name, value, source',
}
ORDER = ['masters', 'workers', 'builders', 'buildsets', 'buildrequests', 'builds',
         'build_properties']


def load(db_url, n):
    t0 = time.time()
    data = rows(n, int(t0))
    if db_url.startswith('sqlite:///'):
        import sqlite3
        conn = sqlite3.connect(db_url[len('sqlite:///'):])
        with conn:
            for t in ORDER:
                cols = COLUMNS[t]
                marks = ','.join('?' * len(cols.split(',')))
                conn.executemany('INSERT INTO %s (%s) VALUES (%s)' % (t, cols, marks), data[t])
        # No ANALYZE: a default Buildbot install never runs it on SQLite.
        conn.close()
    elif db_url.startswith('postgresql://'):
        import io
        import psycopg2
        conn = psycopg2.connect(db_url)
        with conn, conn.cursor() as cur:
            for t in ORDER:
                buf = io.StringIO()
                for r in data[t]:
                    buf.write('\t'.join('\\N' if v is None else str(v) for v in r) + '\n')
                buf.seek(0)
                cur.copy_expert('COPY %s (%s) FROM STDIN' % (t, COLUMNS[t]), buf)
                if t != 'build_properties':  # ids were given: move the serial sequences on
                    cur.execute("SELECT setval(pg_get_serial_sequence('%s', 'id'), "
                                "(SELECT max(id) FROM %s))" % (t, t))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute('ANALYZE')  # as assay-bench-dashboard does on its side
        conn.close()
    else:
        sys.exit('unsupported db url ' + db_url)
    print('loaded %d builds (%d rows) in %.1f s' % (
        n, sum(len(v) for v in data.values()), time.time() - t0))


def get(base, path, headers, timeout=30):
    u = urllib.parse.urlsplit(base)
    t = time.perf_counter()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.request('GET', u.path + path, headers=dict(headers, Connection='close'))
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    return time.perf_counter() - t, r.status, body


def rank(v, q):
    v = sorted(v)
    i = math.ceil(q * len(v))
    return v[min(len(v) - 1, max(i, 1) - 1)]


def measure(base, out, variants, name, cookie=None, warm=20, timed=200, budget_s=240,
            call_timeout=30):
    headers = {'Accept': 'application/json'}
    if cookie:
        headers['Cookie'] = cookie
    res = []
    deadline = time.time() + budget_s
    for v in variants:
        label, path = v.split('=', 1)
        ms, size, status, items = [], None, None, None
        for i in range(warm + timed):
            if time.time() > deadline:
                break
            dt, status, body = get(base, path, headers, call_timeout)
            if status != 200:
                print('%s: HTTP %d %s' % (label, status, body[:300]), file=sys.stderr)
                break
            if i == 0:
                size = len(body)
                doc = json.loads(body)
                lst = next((x for x in doc.values() if isinstance(x, list)), [])
                items = len(lst)
                first = lst[0] if lst else None
                total = doc.get('meta', {}).get('total') if isinstance(doc, dict) else None
            if i >= warm:
                ms.append(dt * 1000)
        row = {'label': label, 'path': path, 'status': status, 'bytes': size, 'items': items,
               'calls': len(ms), 'total': total if size else None,
               'first_item': first if size else None}
        if len(ms) == timed:
            row.update(p50=rank(ms, .5), p95=rank(ms, .95), max=max(ms))
        res.append(row)
        print('  %-26s %8s %8s %8s %8s %6s' % (
            label, fmt(row.get('p50')), fmt(row.get('p95')), fmt(row.get('max')), size, items),
            flush=True)
    with open(out, 'w') as f:
        json.dump({'name': name, 'base': base, 'variants': res}, f, indent=1)


def fmt(x):
    return '-' if x is None else '%.2f' % x


def login(base, user, password):
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        c.request('POST', '/api/v1/session', body=json.dumps(
            {'username': user, 'password': password}),
            headers={'Content-Type': 'application/json', 'Connection': 'close'})
        r = c.getresponse()
        r.read()
        for k, v in r.getheaders():
            if k.lower() == 'set-cookie' and v.startswith('assay_session='):
                print(v.split(';')[0])
                return 0
    except OSError:
        pass
    finally:
        c.close()
    return 1


def table(files):
    runs = []
    for f in files:
        d = json.load(open(f))
        runs.append((d.get('name', f), d['variants']))
    print('%-28s %-26s %8s %8s %8s %9s %5s' % ('server', 'call', 'p50 ms', 'p95 ms', 'max ms',
                                               'bytes', 'rows'))
    for name, vs in runs:
        for v in vs:
            print('%-28s %-26s %8s %8s %8s %9s %5s' % (
                name, v['label'], fmt(v.get('p50')), fmt(v.get('p95')), fmt(v.get('max')),
                v['bytes'], v['items']))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == 'load':
        load(a[0], int(a[1]))
    elif cmd == 'measure':
        measure(a[0], a[1], a[2:], os.environ.get('NAME', a[0]), cookie=os.environ.get('COOKIE'),
                budget_s=int(os.environ.get('MEASURE_BUDGET_S', '240')),
                call_timeout=float(os.environ.get('CALL_TIMEOUT_S', '30')))
    elif cmd == 'login':
        sys.exit(login(a[0], a[1], a[2]))
    elif cmd == 'table':
        table(a)
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
