import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ACTIVE_DEPLOYMENT, api, canWrite, Deployment, DeploymentEvent, Environment, Live, Me } from '../api';
import { ago, ErrorBox, Page, State } from '../util';

// Deployments change without events on /api/v1/events: a page showing one that is not over
// fetches it again this often.
export const POLL_MS = 2000;

// "bot v7", or an image with its digest cut to 12 hex digits (the whole one in `title`).
export function what(x: Pick<Live, 'model' | 'version' | 'image'>): string {
  if (x.model) return `${x.model} v${x.version}`;
  return (x.image ?? '').replace(/@sha256:([0-9a-f]{12})[0-9a-f]{52}$/, '@sha256:$1…');
}

export function strategyKind(d: Deployment): string {
  return Object.keys(d.strategy ?? {})[0] ?? '';
}

// The number of steps the controller makes of a strategy (common/deploy/spec.cc ParseStrategy).
function stepCount(d: Deployment): number {
  const s = d.strategy ?? {};
  if (s.canary) return Array.isArray(s.canary.steps) ? s.canary.steps.length : 0;
  if (s.blue_green) {
    const b = s.blue_green;
    return 2 + (b.pre_promotion_analysis ? 1 : 0) + (b.auto_promote === false ? 1 : 0) + (b.post_promotion_analysis ? 1 : 0);
  }
  if (s.rolling) {
    const raw = s.rolling.batch;
    const batch = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseInt(raw, 10) : 25;
    const batches = Math.ceil(100 / (batch >= 1 && batch <= 100 ? batch : 25));
    return batches + (s.rolling.pause !== undefined ? batches - 1 : 0);
  }
  return 0;
}

// Where a deployment came from: its ref, the pipeline that made it, the one it rolls back to.
export function origin(d: Deployment) {
  const parts = [];
  if (d.ref) parts.push(<>{d.ref}</>);
  if (d.pipeline_id != null) parts.push(<>pipeline <a href={`/ui/pipelines/${d.pipeline_id}`}>#{d.pipeline_id}</a></>);
  if (d.rollback_of != null) parts.push(<>rollback to <a href={`/ui/deployments/${d.rollback_of}`}>#{d.rollback_of}</a></>);
  return parts.map((p, i) => <>{i > 0 && ' · '}{p}</>);
}

const BAD = ['rolled_back', 'aborted', 'rollback_failed', 'failed', 'retire_failed', 'watch_alert', 'superseded'];
const GOOD = ['succeeded', 'promoted', 'analysis_passed', 'approvals_met', 'approved'];
const WAIT = ['paused', 'requested', 'request_ignored', 'watch_ended'];

function eventClass(e: DeploymentEvent): string {
  const phase = e.kind === 'measurement' ? e.data?.phase : undefined;
  if (BAD.includes(e.kind) || phase === 'failed') return 'ev-bad';
  if (GOOD.includes(e.kind) || phase === 'successful') return 'ev-good';
  if (WAIT.includes(e.kind) || phase === 'inconclusive' || phase === 'error') return 'ev-wait';
  return '';
}

interface MetricRun {
  analysis: string;
  metric: string;
  phases: Record<string, number>;
  last: DeploymentEvent;
}

// The analysis runs as their measurement events tell them: per analysis and metric, how many
// measurements had each phase, and the last one.
function analysisRuns(events: DeploymentEvent[]): MetricRun[] {
  const runs = new Map<string, MetricRun>();
  for (const e of events) {
    if (e.kind !== 'measurement' || !e.data) continue;
    const analysis = e.data.analysis ?? '';
    const metric = e.data.metric ?? '';
    const key = `${analysis}\u0000${metric}`;
    const r = runs.get(key) ?? { analysis, metric, phases: {}, last: e };
    const phase = e.data.phase ?? 'error';
    r.phases[phase] = (r.phases[phase] ?? 0) + 1;
    r.last = e;
    runs.set(key, r);
  }
  return [...runs.values()];
}

function Analysis({ events }: { events: DeploymentEvent[] }) {
  const runs = analysisRuns(events);
  if (runs.length === 0) return null;
  return (
    <section>
      <h2>Analysis</h2>
      <table class="list analysis">
        <thead><tr><th>analysis</th><th>metric</th><th>successful</th><th>failed</th><th>inconclusive</th><th>error</th><th>last values</th><th>last measurement</th></tr></thead>
        <tbody>
          {runs.map((r) => (
            <tr data-analysis={r.analysis} data-metric={r.metric}>
              <td>{r.analysis}</td>
              <td>{r.metric}</td>
              {['successful', 'failed', 'inconclusive', 'error'].map((p) => <td>{r.phases[p] ?? 0}</td>)}
              <td><code>{(r.last.data?.values ?? []).join(', ')}</code></td>
              <td><State state={r.last.data?.phase ?? 'error'} /> {r.last.data?.message ?? ''} <span class="sub" title={r.last.at}>{ago(r.last.at)}</span></td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function DeploymentDetail({ id, me }: { id: number; me: Me | null }) {
  const [d, setD] = useState<Deployment | null>(null);
  const [env, setEnv] = useState<Environment | null>(null);
  const [events, setEvents] = useState<DeploymentEvent[]>([]);
  const [error, setError] = useState<unknown>(null);
  // A refused request stays shown until the next one, whatever the polling fetches meanwhile.
  const [refused, setRefused] = useState<unknown>(null);
  const [reason, setReason] = useState('');
  const lastEvent = useRef(0);
  const load = useCallback(async () => {
    try {
      const got = await api<Deployment>('GET', `/api/v1/deployments/${id}`);
      // Only the events after the last one shown.
      const more: DeploymentEvent[] = [];
      for (;;) {
        const r = await api<{ events: DeploymentEvent[] }>('GET', `/api/v1/deployments/${id}/events?after=${lastEvent.current}&limit=1000`);
        more.push(...r.events);
        if (r.events.length > 0) lastEvent.current = Math.max(lastEvent.current, r.events[r.events.length - 1].id);
        if (r.events.length < 1000) break;
      }
      setD(got);
      if (more.length > 0) {
        setEvents((es) => {
          const top = es.length > 0 ? es[es.length - 1].id : 0;
          return [...es, ...more.filter((e) => e.id > top)];
        });
      }
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [id]);
  useEffect(() => {
    lastEvent.current = 0;
    setEvents([]);
    setD(null);
    setRefused(null);
    load();
  }, [load]);
  const going = !!d && (ACTIVE_DEPLOYMENT.includes(d.state) || d.requested !== null);
  useEffect(() => {
    if (!going) return;
    const t = window.setInterval(load, POLL_MS);
    return () => window.clearInterval(t);
  }, [going, load]);
  // Its environment, for the approvals it needs.
  const envPath = d ? `/api/v1/repos/${d.repo_id}/environments/${encodeURIComponent(d.environment)}` : null;
  useEffect(() => {
    if (envPath) api<Environment>('GET', envPath).then(setEnv, () => setEnv(null));
  }, [envPath]);
  const act = async (action: string, body?: Record<string, unknown>) => {
    try {
      setRefused(null);
      await api('POST', `/api/v1/deployments/${id}/${action}`, body);
      setReason('');
      await load();
    } catch (e) {
      setRefused(e);
    }
  };
  if (!d) return <Page title={`Deployment #${id}`}><ErrorBox error={error} /></Page>;
  // Deploying needs the maintainer or admin role, whichever repository (docs/deployments.md).
  const writable = canWrite(me);
  const movable = d.state === 'progressing' || d.state === 'paused';
  const ask = (action: string, extra: Record<string, unknown> = {}) => act(action, { ...extra, ...(reason ? { reason } : {}) });
  const steps = stepCount(d);
  const envHref = `/ui/repos/${d.repo_id}/environments/${encodeURIComponent(d.environment)}`;
  return (
    <Page
      title={<>Deployment #{d.id} <State state={d.state} /></>}
      actions={writable && (
        <>
          {ACTIVE_DEPLOYMENT.includes(d.state) && (
            <input name="reason" placeholder="reason (optional)" value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
          )}
          {d.state === 'pending_approval' && (
            <button data-action="approve" title="Count your approval; its creator cannot approve it" onClick={() => act('approve')}>Approve</button>
          )}
          {d.state === 'progressing' && <button data-action="pause" onClick={() => ask('pause')}>Pause</button>}
          {d.state === 'paused' && <button data-action="resume" onClick={() => ask('resume')}>Resume</button>}
          {movable && (
            <button data-action="promote" title="Skip the current pause or analysis step" onClick={() => ask('promote')}>Promote</button>
          )}
          {movable && (
            <button data-action="promote-full" title="Skip every remaining step: all traffic to the new version, then promotion"
              onClick={() => ask('promote', { full: true })}>
              Promote fully
            </button>
          )}
          {ACTIVE_DEPLOYMENT.includes(d.state) && (
            <button class="danger" data-action="abort" title="Send the traffic back to the stable servers" onClick={() => ask('abort')}>Abort</button>
          )}
        </>
      )}
    >
      <ErrorBox error={error} />
      <ErrorBox error={refused} />
      <dl class="trigger deployment">
        <dt>environment</dt><dd data-field="environment"><a href={envHref}>{d.environment}</a> of {d.repo}</dd>
        <dt>version</dt><dd data-field="version">{d.model ? what(d) : <code>{d.image}</code>}</dd>
        {d.message && <><dt>message</dt><dd data-field="message">{d.message}</dd></>}
        {d.requested && (
          <><dt>requested</dt><dd data-field="requested" class="why">
            {d.requested.action}{d.requested.full ? ' (full)' : ''} by {d.requested.by}{d.requested.reason ? `: ${d.requested.reason}` : ''}; the controller acts on it next
          </dd></>
        )}
        <dt>strategy</dt><dd data-field="strategy">{strategyKind(d)} <code class="sub">{JSON.stringify(d.strategy)}</code></dd>
        <dt>step</dt><dd data-field="step">{Math.min(d.step, steps)} of {steps} steps done</dd>
        <dt>traffic</dt>
        <dd data-field="weight">{d.weight}% to the new version <span class="weight"><span style={{ width: `${d.weight}%` }} /></span></dd>
        <dt>servers</dt><dd data-field="servers">{d.servers.map((s) => `${s.name} ${s.address}`).join(', ')}</dd>
        {d.previous && (
          <><dt>previous</dt><dd data-field="previous">
            {d.previous.servers && d.previous.servers.length > 0 ? d.previous.servers.map((s) => `${s.name} ${s.address}`).join(', ') : 'no servers'}
          </dd></>
        )}
        <dt>from</dt><dd data-field="origin">{origin(d)}{d.job_id != null && <> · <a href={`/ui/jobs/${d.job_id}/log`}>job #{d.job_id}</a></>}</dd>
        <dt>created by</dt><dd data-field="created-by">{d.created_by}</dd>
        {(d.state === 'pending_approval' || d.approvals > 0 || (env && env.required_approvals > 0)) && (
          <><dt>approvals</dt><dd data-field="approvals">
            {d.approvals}{env ? ` of ${env.required_approvals}` : ''}{d.approvers.length > 0 ? ` (${d.approvers.join(', ')})` : ''}
          </dd></>
        )}
        {d.alias_moved && <><dt>alias</dt><dd data-field="alias">moved{env ? ` (${env.alias})` : ''}</dd></>}
        {d.superseded_by != null && <><dt>superseded by</dt><dd><a href={`/ui/deployments/${d.superseded_by}`}>#{d.superseded_by}</a></dd></>}
        <dt>created</dt><dd title={d.created_at}>{ago(d.created_at)}</dd>
        {d.started_at && <><dt>started</dt><dd title={d.started_at}>{ago(d.started_at)}</dd></>}
        {d.watch_until && !d.finished_at && <><dt>watched until</dt><dd title={d.watch_until}>{new Date(d.watch_until).toLocaleString()}</dd></>}
        {d.finished_at && <><dt>finished</dt><dd title={d.finished_at}>{ago(d.finished_at)}</dd></>}
      </dl>
      <Analysis events={events} />
      <section>
        <h2>Events</h2>
        <ol class="timeline">
          {events.map((e) => (
            <li data-event-kind={e.kind} class={eventClass(e)}>
              <span class="when" title={e.at}>{ago(e.at)}</span>
              <span class="kind">{e.kind}</span>
              <span class="text">{e.message}</span>
            </li>
          ))}
        </ol>
      </section>
    </Page>
  );
}
