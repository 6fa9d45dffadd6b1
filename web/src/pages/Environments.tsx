import { useCallback, useEffect, useState } from 'preact/hooks';
import { ACTIVE_DEPLOYMENT, api, canWrite, Deployment, Environment, Me } from '../api';
import { useLocation } from '../router';
import { ago, ErrorBox, Page, State } from '../util';
import { origin, POLL_MS, strategyKind, what } from './Deployment';

interface Repo { id: number; name: string }
interface PageOf { deployments: Deployment[]; next_cursor: string | null }

function targetText(t: Environment['target']): string {
  if (!t) return '';
  if (t.kind === 'haproxy') return `haproxy ${t.backend ?? ''} at ${t.runtime_api ?? ''}`;
  if (t.kind === 'command') return `command ${(t.command ?? []).join(' ')}`;
  return t.kind ?? '';
}

function envHref(e: Environment): string {
  return `/ui/repos/${e.repo_id}/environments/${encodeURIComponent(e.name)}`;
}

function ServesNow({ env }: { env: Environment }) {
  if (!env.live) return <span class="sub">nothing yet</span>;
  return (
    <>
      <span title={env.live.image ?? ''}>{what(env.live)}</span>{' '}
      <a href={`/ui/deployments/${env.live.deployment_id}`}>#{env.live.deployment_id}</a>
    </>
  );
}

// Every repository's environments (?repo=ID: one repository's).
export function Environments() {
  const { query } = useLocation();
  const only = query.get('repo') ?? '';
  const [groups, setGroups] = useState<{ repo: Repo; environments: Environment[] }[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => {
    try {
      const repos = (await api<{ repos: Repo[] }>('GET', '/api/v1/repos')).repos.filter((r) => !only || String(r.id) === only);
      const out: { repo: Repo; environments: Environment[] }[] = [];
      for (const repo of repos) {
        const r = await api<{ environments: Environment[] }>('GET', `/api/v1/repos/${repo.id}/environments`);
        if (r.environments.length > 0) out.push({ repo, environments: r.environments });
      }
      setGroups(out);
      setLoaded(true);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [only]);
  useEffect(() => { load(); }, [load]);
  const going = groups.some((g) => g.environments.some((e) => e.active_deployment !== null));
  useEffect(() => {
    if (!going) return;
    const t = window.setInterval(load, POLL_MS);
    return () => window.clearInterval(t);
  }, [going, load]);
  return (
    <Page title="Environments">
      <ErrorBox error={error} />
      {groups.map(({ repo, environments }) => (
        <section data-repo={repo.name}>
          <h2>{repo.name}</h2>
          <table class="list environments">
            <thead><tr><th>environment</th><th>serves now</th><th>deploying</th><th>branches</th><th>approvals</th><th>alias</th><th>target</th></tr></thead>
            <tbody>
              {environments.map((e) => (
                <tr data-environment={e.name}>
                  <td><a href={envHref(e)}>{e.name}</a></td>
                  <td><ServesNow env={e} /></td>
                  <td>{e.active_deployment !== null && <a href={`/ui/deployments/${e.active_deployment}`}>#{e.active_deployment}</a>}</td>
                  <td>{e.branches.length > 0 ? e.branches.join(', ') : 'any'}</td>
                  <td>{e.required_approvals}</td>
                  <td>{e.alias}</td>
                  <td>{targetText(e.target)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
      {loaded && groups.length === 0 && !error && (
        <p class="empty">No environments yet: <code>assay environments set</code> makes one (docs/deployments.md).</p>
      )}
    </Page>
  );
}

// One environment: what it is, what serves it, and its deployments, newest first, with a
// rollback to an earlier promoted one.
export function EnvironmentDetail({ repoId, name, me }: { repoId: number; name: string; me: Me | null }) {
  const [env, setEnv] = useState<Environment | null>(null);
  const [rows, setRows] = useState<Deployment[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [refused, setRefused] = useState<unknown>(null);
  const [confirm, setConfirm] = useState<Deployment | null>(null);
  const [supersede, setSupersede] = useState(false);
  const [made, setMade] = useState<Deployment | null>(null);
  const base = `/api/v1/repos/${repoId}/environments/${encodeURIComponent(name)}`;
  const list = (cursor?: string) => {
    const q = new URLSearchParams({ repo: String(repoId), environment: name, limit: '50' });
    if (cursor) q.set('cursor', cursor);
    return api<PageOf>('GET', `/api/v1/deployments?${q}`);
  };
  const load = useCallback(async () => {
    try {
      // Both before either is shown: "serving now" and the rows' states then agree.
      const e = await api<Environment>('GET', base);
      const p = await list();
      setEnv(e);
      setRows(p.deployments);
      setNext(p.next_cursor);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [base]);
  useEffect(() => { load(); }, [load]);
  const going = (env !== null && env.active_deployment !== null) || rows.some((d) => ACTIVE_DEPLOYMENT.includes(d.state));
  useEffect(() => {
    if (!going) return;
    const t = window.setInterval(load, POLL_MS);
    return () => window.clearInterval(t);
  }, [going, load]);
  const more = async () => {
    if (!next) return;
    try {
      const p = await list(next);
      setRows((rs) => [...rs, ...p.deployments]);
      setNext(p.next_cursor);
    } catch (e) {
      setError(e);
    }
  };
  const rollback = async () => {
    if (!confirm) return;
    try {
      setRefused(null);
      const n = await api<Deployment>('POST', `${base}/rollback`, { to: confirm.id, ...(supersede ? { supersede: true } : {}) });
      setMade(n);
      setConfirm(null);
      setSupersede(false);
      await load();
    } catch (e) {
      // Stays open: with "supersede" ticked, the same rollback may be taken.
      setRefused(e);
    }
  };
  if (!env) return <Page title={name}><ErrorBox error={error} /></Page>;
  // Deploying needs the maintainer or admin role, whichever repository (docs/deployments.md).
  const writable = canWrite(me);
  const liveId = env.live?.deployment_id ?? null;
  const analysis = env.analysis?.metrics ?? [];
  return (
    <Page title={<>{env.name} <span class="sub">{env.repo}</span></>}>
      <ErrorBox error={error} />
      <ErrorBox error={refused} />
      <dl class="trigger environment">
        <dt>serves now</dt>
        <dd data-field="live">
          <ServesNow env={env} />
          {env.live && env.live.servers.length > 0 && <span class="sub"> on {env.live.servers.map((s) => s.address).join(', ')}</span>}
        </dd>
        <dt>deploying</dt>
        <dd data-field="active">{env.active_deployment !== null ? <a href={`/ui/deployments/${env.active_deployment}`}>#{env.active_deployment}</a> : 'nothing'}</dd>
        <dt>target</dt><dd data-field="target">{targetText(env.target)}</dd>
        <dt>branches</dt><dd data-field="branches">{env.branches.length > 0 ? env.branches.join(', ') : 'any'}</dd>
        <dt>approvals</dt><dd data-field="approvals">{env.required_approvals === 0 ? 'none needed' : `${env.required_approvals}, by people other than the deployment's creator`}</dd>
        <dt>alias</dt><dd data-field="alias">{env.alias}</dd>
        <dt>analysis</dt>
        <dd data-field="analysis">
          {analysis.length > 0 ? analysis.map((m) => m.name).join(', ') : 'none'}
          {env.analysis?.watch !== undefined && <>; watch {String(env.analysis.watch)} after promotion</>}
        </dd>
      </dl>
      {confirm && (
        <div class="confirm" data-confirm-rollback={confirm.id}>
          <span>
            Roll back <b>{env.name}</b> to #{confirm.id}? A new deployment sends all traffic at once to {what(confirm)} on{' '}
            {confirm.servers.map((s) => s.address).join(', ')}; those servers must still be running. The environment's branches and approvals apply.
          </span>
          <label>
            <input type="checkbox" name="supersede" checked={supersede} onChange={(e) => setSupersede((e.target as HTMLInputElement).checked)} />{' '}
            end a paused or waiting deployment (supersede)
          </label>
          <button class="danger" data-action="confirm-rollback" onClick={rollback}>Roll back</button>
          <button data-action="cancel-rollback" onClick={() => { setConfirm(null); setRefused(null); }}>Cancel</button>
        </div>
      )}
      {made && (
        <p class="once" data-rollback-made={made.id}>
          Deployment <a href={`/ui/deployments/${made.id}`}>#{made.id}</a> brings back the version of #{made.rollback_of}.
        </p>
      )}
      <h2>Deployments</h2>
      <table class="list deployments">
        <thead><tr><th>#</th><th>state</th><th>version</th><th>strategy</th><th>from</th><th>by</th><th>message</th><th>created</th><th>finished</th><th></th></tr></thead>
        <tbody>
          {rows.map((d) => (
            <tr key={d.id} data-deployment={d.id} class={d.id === liveId ? 'selected' : ''}>
              <td><a href={`/ui/deployments/${d.id}`}>#{d.id}</a></td>
              <td><State state={d.state} /></td>
              <td title={d.image ?? ''}>{what(d)}</td>
              <td>{strategyKind(d)}</td>
              <td>{origin(d)}</td>
              <td>{d.created_by}</td>
              <td>{d.message}</td>
              <td class="time" title={d.created_at}>{ago(d.created_at)}</td>
              <td class="time" title={d.finished_at ?? ''}>{ago(d.finished_at)}</td>
              <td>
                {d.id === liveId ? (
                  <span class="sub">serving now</span>
                ) : (
                  writable && ['succeeded', 'watching'].includes(d.state) && (
                    <button data-action="rollback" title="Deploy this version again, to its servers" onClick={() => { setRefused(null); setMade(null); setConfirm(d); }}>
                      Roll back to this
                    </button>
                  )
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && !error && <p class="empty">No deployments yet.</p>}
      {next && <button onClick={more}>Older deployments</button>}
    </Page>
  );
}
