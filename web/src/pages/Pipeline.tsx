import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, canWrite, Job, Me, Pipeline as P } from '../api';
import { subscribe } from '../events';
import { navigate } from '../router';
import { duration, ErrorBox, Page, shortSha, State } from '../util';

// Jobs in columns by depth (the longest chain of needs before them); jobs of one matrix
// ("name (a, b)") fold into one group until opened.
export function layout(jobs: Job[]): Job[][] {
  const byName = new Map(jobs.map((j) => [j.name, j]));
  const depth = new Map<string, number>();
  const visit = (j: Job, seen: Set<string>): number => {
    if (depth.has(j.name)) return depth.get(j.name)!;
    if (seen.has(j.name)) return 0;
    seen.add(j.name);
    let d = 0;
    for (const n of j.needs) {
      const dep = byName.get(n);
      if (dep) d = Math.max(d, visit(dep, seen) + 1);
    }
    depth.set(j.name, d);
    return d;
  };
  const cols: Job[][] = [];
  for (const j of jobs) {
    const d = visit(j, new Set());
    (cols[d] ??= []).push(j);
  }
  return cols.map((c) => c ?? []);
}

function groupName(name: string): string {
  const i = name.indexOf(' (');
  return i > 0 && name.endsWith(')') ? name.slice(0, i) : name;
}

function worst(states: string[]): string {
  for (const s of ['failed', 'error', 'timed_out', 'running', 'assigned', 'queued', 'pending', 'canceled'])
    if (states.includes(s)) return s;
  return states[0] ?? 'pending';
}

function JobCard({ j }: { j: Job }) {
  return (
    <a class={`job job-${j.state}`} href={`/ui/jobs/${j.id}/log`} data-job={j.name}>
      <State state={j.state} />
      <span class="job-name">{j.name}</span>
      <span class="job-meta">
        {duration(j.started_at, j.finished_at)}
        {j.agent && <> · {j.agent}</>}
        {j.gpu_indices.length > 0 && <> · GPU {j.gpu_indices.join(',')}</>}
        {j.attempt > 1 && <> · attempt {j.attempt}</>}
      </span>
    </a>
  );
}

function Column({ jobs }: { jobs: Job[] }) {
  const [open, setOpen] = useState<Set<string>>(new Set());
  const groups = new Map<string, Job[]>();
  for (const j of jobs) {
    const g = groupName(j.name);
    groups.set(g, [...(groups.get(g) ?? []), j]);
  }
  return (
    <div class="column">
      {[...groups.entries()].map(([g, members]) =>
        members.length === 1 && members[0].name === g ? (
          <JobCard j={members[0]} />
        ) : (
          <div class="matrix" data-matrix={g}>
            <button class="matrix-head" onClick={() => {
              const n = new Set(open);
              if (n.has(g)) n.delete(g);
              else n.add(g);
              setOpen(n);
            }}>
              <State state={worst(members.map((m) => m.state))} /> {g} ({members.length})
            </button>
            {open.has(g) && members.map((m) => <JobCard j={m} />)}
          </div>
        ),
      )}
    </div>
  );
}

export function Pipeline({ id, me }: { id: number; me: Me | null }) {
  const [p, setP] = useState<P | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => {
    try {
      setP(await api<P>('GET', `/api/v1/pipelines/${id}`));
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [id]);
  useEffect(() => {
    load();
    return subscribe((e) => {
      if (e.type === 'resync' || (e.type === 'pipeline' && e.id === id) ||
          (e.type === 'job' && e.pipeline_id === id)) {
        load();
      }
    });
  }, [load]);
  const act = async (method: string, path: string) => {
    try {
      await api(method, path);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  const rerun = async () => {
    try {
      const n = await api<P>('POST', `/api/v1/pipelines/${id}/rerun`);
      navigate(`/ui/pipelines/${n.id}`);
    } catch (e) {
      setError(e);
    }
  };
  if (!p) return <Page title={`Pipeline #${id}`}><ErrorBox error={error} /></Page>;
  const writable = canWrite(me, p.repo_id);
  const jobs = p.jobs ?? [];
  const retryable = p.state !== 'running' &&
    jobs.some((j) => ['failed', 'timed_out', 'error', 'canceled'].includes(j.state));
  const subject = (p.commit_message ?? '').split('\n')[0];
  return (
    <Page
      title={<>Pipeline #{p.id} <State state={p.state} /></>}
      actions={writable && (
        <>
          {p.state === 'running' && (
            <button class="danger" data-action="cancel-pipeline" onClick={() => act('POST', `/api/v1/pipelines/${p.id}/cancel`)}>
              Cancel pipeline
            </button>
          )}
          {retryable && (
            <button data-action="retry-pipeline" title="Run every failed or canceled job again, in this pipeline"
              onClick={() => act('POST', `/api/v1/pipelines/${p.id}/retry`)}>
              Retry failed
            </button>
          )}
          {p.state !== 'error' && (
            <button data-action="rerun-pipeline" title="Start a new pipeline of the same commit" onClick={rerun}>
              Re-run
            </button>
          )}
        </>
      )}
    >
      <ErrorBox error={error} />
      <dl class="trigger">
        <dt>repository</dt><dd>{p.repo}</dd>
        <dt>ref</dt><dd>{p.ref}</dd>
        <dt>commit</dt><dd><code>{shortSha(p.commit_sha)}</code> <span class="subject" title={p.commit_message ?? ''}>{subject}</span></dd>
        {p.commit_author && <><dt>author</dt><dd>{p.commit_author}</dd></>}
        <dt>event</dt>
        <dd>
          {p.event}{p.pr_number ? ` #${p.pr_number}` : ''}
          {p.delivery_id != null && <> · webhook delivery <a href={`/ui/settings?delivery=${p.delivery_id}`}>#{p.delivery_id}</a></>}
          {p.rerun_of != null && <> · re-run of <a href={`/ui/pipelines/${p.rerun_of}`}>#{p.rerun_of}</a></>}
        </dd>
        {p.message && <><dt>message</dt><dd>{p.message}</dd></>}
        <dt>duration</dt><dd>{duration(p.created_at, p.finished_at)}</dd>
      </dl>
      {p.errors.length > 0 && <pre class="errors">{p.errors.join('\n')}</pre>}
      {p.notes.length > 0 && <ul class="notes">{p.notes.map((n) => <li>{n}</li>)}</ul>}
      <div class="dag">
        {layout(jobs).map((col) => <Column jobs={col} />)}
      </div>
      <table class="list jobs">
        <thead><tr><th>job</th><th>state</th><th>agent</th><th>duration</th><th>why / message</th><th></th></tr></thead>
        <tbody>
          {jobs.map((j) => (
            <tr data-job-row={j.name}>
              <td><a href={`/ui/jobs/${j.id}/log`}>{j.name}</a></td>
              <td><State state={j.state} /></td>
              <td>{j.agent ?? ''}</td>
              <td>{duration(j.started_at, j.finished_at)}</td>
              <td class="why">{j.waiting ?? j.message ?? ''}</td>
              <td>
                {writable && ['queued', 'pending', 'assigned', 'running'].includes(j.state) && (
                  <button class="danger" data-action="cancel-job" onClick={() => act('POST', `/api/v1/jobs/${j.id}/cancel`)}>
                    Cancel
                  </button>
                )}
                {writable && ['succeeded', 'failed', 'timed_out', 'error', 'canceled'].includes(j.state) && (
                  <button data-action="retry-job" onClick={() => act('POST', `/api/v1/jobs/${j.id}/retry`)}>
                    Retry
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Page>
  );
}
