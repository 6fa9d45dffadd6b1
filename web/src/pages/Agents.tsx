import { useCallback, useEffect, useState } from 'preact/hooks';
import { Agent, api, isAdmin, Job, Me } from '../api';
import { subscribe } from '../events';
import { ago, ErrorBox, Page, State } from '../util';

export function Agents({ me }: { me: Me | null }) {
  const [agents, setAgents] = useState<Agent[]>([]);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => {
    try {
      setAgents((await api<{ agents: Agent[] }>('GET', '/api/v1/agents')).agents);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, []);
  useEffect(() => {
    load();
    const t = window.setInterval(load, 15000); // heartbeats are not events: refresh now and then
    const off = subscribe((e) => {
      if (e.type === 'job' || e.type === 'resync') load();
    });
    return () => {
      window.clearInterval(t);
      off();
    };
  }, [load]);
  const act = async (name: string, action: string) => {
    try {
      await api('POST', `/api/v1/agents/${encodeURIComponent(name)}/${action}`, action === 'drain' ? {} : undefined);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <Page title="Agents">
      <ErrorBox error={error} />
      <table class="list agents">
        <thead><tr><th>name</th><th>state</th><th>labels</th><th>slots in use</th><th>jobs</th><th>GPUs</th><th>executors</th><th>last heartbeat</th><th></th></tr></thead>
        <tbody>
          {agents.map((a) => (
            <tr data-agent={a.name}>
              <td>{a.name}<div class="sub">{a.version}</div></td>
              <td><State state={a.drained ? 'drained' : a.state} />{a.state_reason && <div class="sub">{a.state_reason}</div>}</td>
              <td>{a.labels.join(', ')}</td>
              <td data-slots-used={(a.jobs ?? []).length}>{(a.jobs ?? []).length} / {a.cpu_slots} CPU · {a.memory_gb} GB</td>
              <td>{(a.jobs ?? []).map((j) => <a href={`/ui/jobs/${j.job_id}/log`}>#{j.job_id} </a>)}</td>
              <td>
                {a.gpus.map((g) => {
                  const u = a.gpu_usage?.find((x) => x.index === g.index);
                  return (
                    <div data-gpu={g.index}>
                      {g.index}: {g.name ?? g.uuid}
                      {u ? (
                        <span class="gpu-load" title={`as of ${a.gpu_usage_at ?? ''}`}>
                          {' · '}{u.utilization_pct >= 0 ? `${u.utilization_pct}%` : 'n/a'}{' · '}
                          {(u.memory_used_mb / 1024).toFixed(1)} / {Math.round((g.memory_mb ?? 0) / 1024)} GiB
                        </span>
                      ) : g.memory_mb ? ` · ${Math.round(g.memory_mb / 1024)} GiB` : ''}
                    </div>
                  );
                })}
              </td>
              <td>{a.executors.join(', ')}</td>
              <td title={a.last_seen_at ?? ''}>{ago(a.last_seen_at)}</td>
              <td>
                {isAdmin(me) && (a.drained
                  ? <button onClick={() => act(a.name, 'resume')}>Resume</button>
                  : <button onClick={() => act(a.name, 'drain')}>Drain</button>)}
                {isAdmin(me) && a.access === 'enrolled' && <button class="danger" onClick={() => act(a.name, 'disable')}>Disable</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {agents.length === 0 && !error && <p class="empty">No agents have connected.</p>}
    </Page>
  );
}

export function Queue() {
  const [jobs, setJobs] = useState<Job[]>([]);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => {
    try {
      setJobs((await api<{ jobs: Job[] }>('GET', '/api/v1/queue')).jobs);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, []);
  useEffect(() => {
    load();
    return subscribe((e) => {
      if (e.type === 'job' || e.type === 'resync') load();
    });
  }, [load]);
  return (
    <Page title="Queue">
      <ErrorBox error={error} />
      <table class="list queue">
        <thead><tr><th>job</th><th>repository</th><th>state</th><th>queued</th><th>why it waits</th></tr></thead>
        <tbody>
          {jobs.map((j) => (
            <tr data-queued={j.name}>
              <td><a href={`/ui/jobs/${j.id}/log`}>{j.name}</a> <a class="sub" href={`/ui/pipelines/${j.pipeline_id}`}>#{j.pipeline_id}</a></td>
              <td>{j.repo}</td>
              <td><State state={j.state} /></td>
              <td>{ago(j.queued_at ?? j.created_at)}</td>
              <td class="why">{j.waiting ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {jobs.length === 0 && !error && <p class="empty">Nothing is waiting.</p>}
    </Page>
  );
}
