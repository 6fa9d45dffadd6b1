#!/usr/bin/python3
"""Collects the outputs of bench/sched.sh into one JSON file and prints one table.

  sched_report.py WORK_DIR OUT.json COMMIT PG_VERSION "LOADAVG AT START" WALL_S
"""
import json
import os
import re
import sys
import time


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def pgbench(path):
    try:
        text = open(path).read()
    except OSError:
        return None
    m = re.search(r'^tps = ([0-9.]+) \(without initial connection time\)', text, re.M)
    lat = re.search(r'^latency average = ([0-9.]+) ms', text, re.M)
    n = re.search(r'^number of transactions actually processed: (\d+)', text, re.M)
    if not m:
        return None
    return {'tps': float(m.group(1)), 'latency_ms': float(lat.group(1)) if lat else None,
            'transactions': int(n.group(1)) if n else None}


def main():
    work, out, commit, pgver, load_start, wall = sys.argv[1:7]
    R = {'commit': commit, 'cores': os.cpu_count(), 'postgresql': pgver,
         'loadavg_at_start': load_start.split(),
         'loadavg_at_end': open('/proc/loadavg').read().split()[:3],
         'finished_utc': time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime()),
         'wall_s': int(wall),
         'dispatch': load(work + '/dispatch.json'),
         'handout': load(work + '/handout.json'),
         'pgbench': pgbench(work + '/pgbench.txt'),
         'lost': load(work + '/lost.json'),
         'swarm': load(work + '/swarm.json')}
    with open(out, 'w') as f:
        json.dump(R, f, indent=1)

    rows = []
    d = R['dispatch']
    if d:
        rows.append(('1. dispatch + finish: %d queued jobs, %d agents x 1 slot, %d finishing workers'
                     % (d['jobs'], d['agents'], d['workers']), ''))
        rows.append(('   dispatches/s (whole run; median 1-s bucket)',
                     '%.0f; %.0f%s' % (d['dispatches_per_s'], d['steady_per_s'],
                                       '' if d['complete'] else ' (INCOMPLETE)')))
        rows.append(('   slot freed -> next assignment p50 / p99',
                     '%.1f / %.1f ms' % (d['refill_p50_ms'], d['refill_p99_ms'])))
        rows.append(('   CPU over the run: bench process / PostgreSQL',
                     '%.0f%% / %.0f%% of one core' % (100 * d['cpu_s'] / d['wall_s'],
                                                      100 * d['pg_cpu_s'] / d['wall_s'])))
        p = d.get('paced')
        if p:
            rows.append(('   queued -> assignment at %d jobs/s: p50 / p99 / max' % p['rate'],
                         '%.1f / %.1f / %.1f ms' % (p['p50_ms'], p['p99_ms'], p['max_ms'])))
    h = R['handout']
    if h:
        rows.append(('1a. hand-out only: %d queued jobs, %d agents x %d slots, nothing finishes'
                     % (h['jobs'], h['agents'], h.get('slots', 0)), ''))
        rows.append(('   dispatches/s (whole run: first queue read to last assignment)',
                     '%.0f%s' % (h['dispatches_per_s'], '' if h['complete'] else ' (INCOMPLETE)')))
    pg = R['pgbench']
    if pg:
        rows.append(('   pgbench TPC-B-like, same PostgreSQL (-c 4 -j 2)',
                     '%.0f tps (latency %.1f ms)' % (pg['tps'], pg['latency_ms'] or 0)))
    lost = R['lost']
    if lost:
        rows.append(('2. lost agent: kill -> attempt 2 assigned / started, min/med/max s', ''))
        for s in lost['summary']:
            rows.append(('   %s %s (n=%d)' % ('SIGKILL' if s['mode'] == 'kill' else 'SIGSTOP',
                                             s['flags'], s['n']),
                         '%s / %s' % ('/'.join('%.1f' % v for v in s['assigned']),
                                      '/'.join('%.1f' % v for v in s['started']))))
    sw = R['swarm']
    if sw:
        rows.append(('3. swarm: %d agents over %d channels, heartbeat %gs'
                     % (sw['agents'], sw['channels'], sw['heartbeat_s']), ''))
        rows.append(('   welcomed; time to connect all',
                     '%d; %.1f s' % (sw['welcomed'], sw['connect_s'])))
        if 'server_cpu_pct' in sw:
            rows.append(('   server CPU in %.0f s window' % sw['window_s'],
                         '%.1f%% of one core' % sw['server_cpu_pct']))
            rows.append(('   server VmRSS / VmHWM',
                         '%.1f / %.1f MiB' % (sw['server_rss_kb'] / 1024,
                                              sw['server_hwm_kb'] / 1024)))
            rows.append(('   server threads / fds', '%d / %d' % (sw['server_threads'],
                                                                sw['server_fds'])))
        rows.append(('   streams ended early (failures)', '%d' % sw['ended_early']))
    width = max((len(r[0]) for r in rows), default=10)
    print('Scheduler benchmarks, commit %s, %d cores, PostgreSQL %s; load at start %s, end %s'
          % (commit, R['cores'], pgver, ' '.join(R['loadavg_at_start']),
             ' '.join(R['loadavg_at_end'])))
    for k, v in rows:
        print(k.ljust(width), ' ', v)


if __name__ == '__main__':
    main()
