#!/usr/bin/python3
"""Collects bench/run.sh phase folders into one JSON file and prints the table.

  report.py collect OUT.json HWM_RESET COMMIT PHASE_DIR...
  report.py table OUT.json

The columns follow ../shared/peers/buildbot/README.md (sections 3-5) so that the two
tables can be read side by side. One difference is stated in the table: Assay answers a
push webhook with 202 Accepted (GitHub treats any 2xx as delivered), so "http" counts 2xx.
"""
import json
import os
import sys
import time


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def collect(out, hwm, commit, dirs):
    R = {'system': 'assay', 'commit': commit, 'cores': os.cpu_count(), 'hwm_reset': hwm,
         'loadavg_at_end': open('/proc/loadavg').read().split()[:3],
         'finished_utc': time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime()),
         'throughput': []}
    for d in dirs:
        ph = load(d + '/phase.json')
        cl = load(d + '/client.json')
        if ph is None or cl is None:
            continue
        ph['client'] = cl['summary']
        ph['rows'] = cl['rows']
        ph['client']['http_2xx'] = sum(1 for r in cl['rows'] if 200 <= r['status'] < 300)
        ph['server'] = load(d + '/server.json', {})
        b = [json.loads(l) for l in open(d + '/proc-before.jsonl')]
        a = [json.loads(l) for l in open(d + '/proc-after.jsonl')]
        wall = a[0]['t'] - b[0]['t']
        ph['cpu'] = {'wall_s': wall, 'server_cpu_s': a[0]['cpu_s'] - b[0]['cpu_s'],
                     'agents_cpu_s_incl_children': sum(
                         (y['cpu_s'] + y['cpu_children_s']) - (x['cpu_s'] + x['cpu_children_s'])
                         for x, y in zip(b[1:], a[1:]))}
        ph['rss']['server']['load'] = a[0]
        ph['rss']['agent1']['load'] = a[1]
        if ph['kind'] == 'latency':
            R['latency'] = ph
        else:
            R['throughput'].append(ph)
    with open(out, 'w') as f:
        json.dump(R, f, indent=1)


def mib(kb):
    return '%6.1f' % (kb / 1024.0) if kb else '     -'


def f3(v):
    return '%.3f' % v if v is not None else '-'


def table(path):
    R = load(path)
    print('Assay %s | finished %s | cores=%s | git mode=incremental (worktree from a shared cache)'
          % (R['commit'], R['finished_utc'], R['cores']))
    L = R.get('latency')
    if L:
        c = L['client']
        print('\nLATENCY  webhook send -> job-start stamp, %d sequential pushes (W=1, 1 warm-up not counted)'
              % c['n'])
        print('  p50 %s s   p90 %s s   max %s s   min %s s   mean %s s' % (
            f3(c['lat_p50']), f3(c['lat_p90']), f3(c['lat_max']), f3(c['lat_min']), f3(c['lat_mean'])))
        print('  hook HTTP response p50 %s s; send -> server reports idle p50 %s s (polled every 0.02 s)'
              % (f3(c['ack_p50']), f3(c['e2e_p50'])))
        print('  http 2xx: %d/%d   jobs seen: %d/%d   revision mismatches: %d'
              % (c['http_2xx'], c['n'], c['jobs_seen'], c['n'], c['rev_mismatch']))
    if R['throughput']:
        print('\nTHROUGHPUT  N webhooks back-to-back; makespan = first send -> last job-start stamp')
        print('  scenario   W    N  send_s  makespan  jobs/s   idle_s  jobs/s*  http  jobs missing  pipelines attempts')
        for T in R['throughput']:
            c, s = T['client'], T['server']
            print('  %-9s %2d %4d %7.2f %9.2f %7.1f %8s %8s %5d %5d %7d %10s %8s' % (
                T['name'], T['workers'], c['n'], c['send_s'], c['makespan_s'] or 0,
                c['jobs_per_s'] or 0, f3(c['idle_s']),
                '%.1f' % (c['jobs_seen'] / c['idle_s']) if c['idle_s'] else '-',
                c['http_2xx'], c['jobs_seen'], c['missing'], s.get('pipelines', '-'),
                s.get('attempts', '-')))
        for T in R['throughput']:
            c = T['client']
            print('  %s: %d/%d pushed SHAs got a job, %d duplicate job lines, last pushed SHA built: %s, '
                  'revision mismatches: %d, agents used: %d' % (
                      T['name'], c['jobs_seen'], c['n'], c['duplicate_lines'],
                      'yes' if c['last_pushed_sha_built'] else 'NO', c['rev_mismatch'],
                      c['workers_used']))
        print('  (pipelines/attempts: rows in PostgreSQL after the phase, warm-up included;'
              ' Assay never merges pushes)')
    print('\nRESOURCES (MiB)            idle RSS   idle peak   load peak   RSS after load')
    for T in ([L] if L else []) + R['throughput']:
        for who in ('server', 'agent1'):
            r = T['rss'][who]
            print('  %-9s %-8s       %s      %s      %s         %s' % (
                T['name'], who, mib(r['idle']['VmRSS_kB']), mib(r['idle']['VmHWM_kB']),
                mib(r['load']['VmHWM_kB']), mib(r['load']['VmRSS_kB'])))
    print('  (peak = VmHWM, reset with clear_refs=5 after warm-up: %s; agent1 = daemon process only)'
          % R['hwm_reset'])
    print('\nCPU during the measured load (seconds; cores = CPU s / wall s; agents include git/sh children)')
    for T in ([L] if L else []) + R['throughput']:
        c = T['cpu']
        w = c['wall_s'] or 1
        print('  %-9s wall %6.1f s  server %5.1f s (%.2f cores)  agents %5.1f s (%.2f cores)' % (
            T['name'], c['wall_s'], c['server_cpu_s'], c['server_cpu_s'] / w,
            c['agents_cpu_s_incl_children'], c['agents_cpu_s_incl_children'] / w))


if __name__ == '__main__':
    if sys.argv[1] == 'collect':
        collect(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        table(sys.argv[2])
