import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, Pipeline } from '../api';
import { subscribe } from '../events';
import { navigate, useLocation } from '../router';
import { ago, duration, ErrorBox, Page, shortSha, State } from '../util';

const STATES = ['', 'running', 'succeeded', 'failed', 'canceled', 'error'];
const EVENTS = ['', 'push', 'pull_request', 'tag', 'manual', 'schedule'];

interface PageOf {
  pipelines: Pipeline[];
  next_cursor: string | null;
}

export function Pipelines() {
  const { query } = useLocation();
  const filters = {
    repo: query.get('repo') ?? '',
    branch: query.get('branch') ?? '',
    state: query.get('state') ?? '',
    event: query.get('event') ?? '',
  };
  const key = JSON.stringify(filters);
  const [rows, setRows] = useState<Pipeline[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const refetch = useRef<number | undefined>(undefined);
  const shown = useRef<Pipeline[]>([]);
  shown.current = rows;

  const url = useCallback(
    (cursor?: string) => {
      const q = new URLSearchParams({ limit: '50' });
      for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
      if (cursor) q.set('cursor', cursor);
      return `/api/v1/pipelines?${q}`;
    },
    [key],
  );
  const load = useCallback(async () => {
    try {
      const p = await api<PageOf>('GET', url());
      setRows(p.pipelines);
      setNext(p.next_cursor);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [url]);

  useEffect(() => {
    load();
    return subscribe((e) => {
      if (e.type === 'pipeline' && e.id !== undefined) {
        // Preact runs an updater later, so what is shown now is read from the ref.
        const known = shown.current.some((r) => r.id === e.id);
        setRows((rs) => rs.map((r) => (r.id === e.id ? { ...r, state: e.state ?? r.state } : r)));
        if (known && e.state === 'running') return;
      }
      if (e.type === 'job') return;
      // A new pipeline, a finished one (its finish time), or a resync: fetch the page again,
      // once for a burst of events.
      window.clearTimeout(refetch.current);
      refetch.current = window.setTimeout(load, 250);
    });
  }, [load]);

  const setFilter = (k: string, v: string) => {
    const q = new URLSearchParams(location.search);
    if (v) q.set(k, v);
    else q.delete(k);
    navigate(`/ui/?${q}`);
  };
  const more = async () => {
    if (!next) return;
    const p = await api<PageOf>('GET', url(next));
    setRows((rs) => [...rs, ...p.pipelines]);
    setNext(p.next_cursor);
  };

  return (
    <Page title="Pipelines">
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <input placeholder="repository" value={filters.repo} name="repo"
          onChange={(e) => setFilter('repo', (e.target as HTMLInputElement).value)} />
        <input placeholder="branch" value={filters.branch} name="branch"
          onChange={(e) => setFilter('branch', (e.target as HTMLInputElement).value)} />
        <select name="state" value={filters.state} onChange={(e) => setFilter('state', (e.target as HTMLSelectElement).value)}>
          {STATES.map((s) => <option value={s}>{s || 'any state'}</option>)}
        </select>
        <select name="event" value={filters.event} onChange={(e) => setFilter('event', (e.target as HTMLSelectElement).value)}>
          {EVENTS.map((s) => <option value={s}>{s || 'any event'}</option>)}
        </select>
      </form>
      <ErrorBox error={error} />
      <table class="list pipelines">
        <thead>
          <tr><th>#</th><th>state</th><th>repository</th><th>ref</th><th>commit</th><th>event</th><th>started</th><th>duration</th></tr>
        </thead>
        <tbody>
          {rows.map((p) => (
            <tr key={p.id} data-pipeline={p.id}>
              <td><a href={`/ui/pipelines/${p.id}`}>#{p.id}</a></td>
              <td><State state={p.state} /></td>
              <td>{p.repo}</td>
              <td>{p.ref.replace(/^refs\/(heads|tags)\//, '')}</td>
              <td><code>{shortSha(p.commit_sha)}</code> {p.message ?? ''}</td>
              <td>{p.event}</td>
              <td title={p.created_at ?? ''}>{ago(p.created_at)}</td>
              <td>{duration(p.created_at, p.finished_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && !error && <p class="empty">No pipelines yet.</p>}
      {next && <button onClick={more}>Older pipelines</button>}
    </Page>
  );
}
