import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, canWrite, isAdmin, Me } from '../api';
import { useLocation } from '../router';
import { ago, ErrorBox, Page } from '../util';

interface Token { id: number; name: string; scope: string; user: string; expires_at: string; last_used_at: string | null; revoked: boolean }
interface User { id: number; username: string; role: string; disabled: boolean; maintains: number[] }
interface Repo {
  id: number; name: string; provider: string; clone_url: string; default_branch: string; has_webhook_secret: boolean;
  commit_status: { api_url: string; has_token: boolean; context: string } | null;
}

function Tokens() {
  const [tokens, setTokens] = useState<Token[]>([]);
  const [name, setName] = useState('');
  const [scope, setScope] = useState('read');
  const [made, setMade] = useState('');
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => {
    try {
      setTokens((await api<{ tokens: Token[] }>('GET', '/api/v1/tokens')).tokens);
    } catch (e) {
      setError(e);
    }
  }, []);
  useEffect(() => { load(); }, [load]);
  const create = async (e: Event) => {
    e.preventDefault();
    try {
      const t = await api<{ token: string }>('POST', '/api/v1/tokens', { name, scope });
      setMade(t.token);
      setName('');
      await load();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section>
      <h2>API tokens</h2>
      <ErrorBox error={error} />
      {made && <p class="once">Copy this token now; it is not shown again: <code data-new-token>{made}</code></p>}
      <form class="inline" onSubmit={create}>
        <input placeholder="token name" name="token-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required />
        <select value={scope} onChange={(e) => setScope((e.target as HTMLSelectElement).value)}>
          <option value="read">read</option><option value="write">write</option><option value="admin">admin</option>
        </select>
        <button type="submit">Create token</button>
      </form>
      <table class="list">
        <thead><tr><th>name</th><th>scope</th><th>expires</th><th>last used</th><th></th></tr></thead>
        <tbody>
          {tokens.map((t) => (
            <tr>
              <td>{t.name}</td><td>{t.scope}</td><td>{t.expires_at.slice(0, 10)}</td><td>{ago(t.last_used_at)}</td>
              <td>{t.revoked ? 'revoked' : <button class="danger" onClick={async () => { await api('DELETE', `/api/v1/tokens/${t.id}`); load(); }}>Revoke</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Users() {
  const [users, setUsers] = useState<User[]>([]);
  const [form, setForm] = useState({ username: '', password: '', role: 'viewer' });
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => {
    try {
      setUsers((await api<{ users: User[] }>('GET', '/api/v1/users')).users);
    } catch (e) {
      setError(e);
    }
  }, []);
  useEffect(() => { load(); }, [load]);
  const create = async (e: Event) => {
    e.preventDefault();
    try {
      await api('POST', '/api/v1/users', form);
      setForm({ username: '', password: '', role: 'viewer' });
      await load();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section>
      <h2>Users</h2>
      <ErrorBox error={error} />
      <form class="inline" onSubmit={create}>
        <input placeholder="username" value={form.username} onInput={(e) => setForm({ ...form, username: (e.target as HTMLInputElement).value })} required />
        <input placeholder="password" type="password" autocomplete="new-password" value={form.password} onInput={(e) => setForm({ ...form, password: (e.target as HTMLInputElement).value })} required />
        <select value={form.role} onChange={(e) => setForm({ ...form, role: (e.target as HTMLSelectElement).value })}>
          <option value="viewer">viewer</option><option value="maintainer">maintainer</option><option value="admin">admin</option>
        </select>
        <button type="submit">Add user</button>
      </form>
      <table class="list">
        <thead><tr><th>user</th><th>role</th><th>maintains</th><th>state</th></tr></thead>
        <tbody>
          {users.map((u) => (
            <tr><td>{u.username}</td><td>{u.role}</td><td>{u.maintains.join(', ')}</td><td>{u.disabled ? 'disabled' : 'active'}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

interface Delivery {
  id: number; provider: string; delivery_id: string; event: string; state: string;
  message: string | null; received_at: string; pipeline_id: number | null;
}
interface Secret { name: string; environment: string | null; updated_at: string }
interface TestResult { http_status: number; result: string; delivery: number | null; status: string | null; message: string | null }

// One repository's webhook, commit statuses, deliveries and secrets (secrets are write-only:
// the page never sees a value).
function RepoPanel({ repo, writable, reload, highlight }: { repo: Repo; writable: boolean; reload: () => void; highlight: number | null }) {
  const [deliveries, setDeliveries] = useState<Delivery[]>([]);
  const [secrets, setSecrets] = useState<Secret[] | null>(null);
  const [test, setTest] = useState<TestResult | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [hookSecret, setHookSecret] = useState('');
  const [statusUrl, setStatusUrl] = useState(repo.commit_status?.api_url ?? '');
  const [statusToken, setStatusToken] = useState('');
  const [secretName, setSecretName] = useState('');
  const [secretValue, setSecretValue] = useState('');
  const base = `/api/v1/repos/${repo.id}`;
  const load = useCallback(async () => {
    try {
      setDeliveries((await api<{ deliveries: Delivery[] }>('GET', `${base}/deliveries?limit=10`)).deliveries);
      if (writable) setSecrets((await api<{ secrets: Secret[] }>('GET', `${base}/secrets`)).secrets);
    } catch (e) {
      setError(e);
    }
  }, [base, writable]);
  useEffect(() => { load(); }, [load]);
  const run = async (f: () => Promise<unknown>) => {
    try {
      setError(null);
      await f();
      await load();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div class="repo-panel" data-repo-panel={repo.name}>
      <h3>{repo.name}</h3>
      <ErrorBox error={error} />
      <dl class="trigger">
        <dt>webhook URL</dt><dd><code>{location.origin}/hooks/{repo.provider}/{repo.id}</code></dd>
        <dt>webhook secret</dt><dd>{repo.has_webhook_secret ? 'set' : 'none: deliveries are refused'}</dd>
        <dt>commit statuses</dt>
        <dd>{repo.commit_status ? <>to <code>{repo.commit_status.api_url}</code> as <code>{repo.commit_status.context}</code></> : 'off'}</dd>
      </dl>
      {writable && (
        <>
          <form class="inline" onSubmit={(e) => { e.preventDefault(); run(async () => { await api('PATCH', base, { webhook_secret: hookSecret }); setHookSecret(''); reload(); }); }}>
            <input name="webhook-secret" type="password" autocomplete="off" placeholder="new webhook secret" value={hookSecret} onInput={(e) => setHookSecret((e.target as HTMLInputElement).value)} />
            <button type="submit" disabled={!hookSecret}>Set webhook secret</button>
            <button type="button" data-action="test-delivery" onClick={() => run(async () => setTest(await api<TestResult>('POST', `${base}/test-delivery`)))}>
              Send test delivery
            </button>
          </form>
          {test && (
            <p class="test-result" data-test-result={test.result}>
              Test delivery: HTTP {test.http_status}, {test.result}{test.status ? ` (${test.status})` : ''}{test.message ? `: ${test.message}` : ''}
            </p>
          )}
          <form class="inline" onSubmit={(e) => { e.preventDefault(); run(async () => { await api('PUT', `${base}/commit-status`, { api_url: statusUrl, token: statusToken }); setStatusToken(''); reload(); }); }}>
            <input name="status-url" placeholder="forge API URL (https://api.github.com)" value={statusUrl} onInput={(e) => setStatusUrl((e.target as HTMLInputElement).value)} />
            <input name="status-token" type="password" autocomplete="off" placeholder="status token" value={statusToken} onInput={(e) => setStatusToken((e.target as HTMLInputElement).value)} />
            <button type="submit" disabled={!statusUrl || !statusToken}>Report commit statuses</button>
            {repo.commit_status && <button type="button" class="danger" onClick={() => run(async () => { await api('DELETE', `${base}/commit-status`); reload(); })}>Stop</button>}
          </form>
        </>
      )}
      <h4>Recent deliveries</h4>
      <table class="list deliveries">
        <thead><tr><th>#</th><th>event</th><th>delivery</th><th>state</th><th>why</th><th>pipeline</th><th>received</th></tr></thead>
        <tbody>
          {deliveries.map((d) => (
            <tr data-delivery={d.id} class={highlight === d.id ? 'selected' : ''}>
              <td>{d.id}</td><td>{d.event}</td><td><code>{d.delivery_id}</code></td><td>{d.state}</td>
              <td class="why">{d.message ?? ''}</td>
              <td>{d.pipeline_id != null && <a href={`/ui/pipelines/${d.pipeline_id}`}>#{d.pipeline_id}</a>}</td>
              <td>{ago(d.received_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {secrets && (
        <>
          <h4>Secrets</h4>
          <table class="list secrets">
            <thead><tr><th>name</th><th>environment</th><th>updated</th><th></th></tr></thead>
            <tbody>
              {secrets.map((x) => (
                <tr data-secret={x.name}>
                  <td><code>{x.name}</code></td><td>{x.environment ?? 'all'}</td><td>{ago(x.updated_at)}</td>
                  <td><button class="danger" onClick={() => run(() => api('DELETE', `${base}/secrets/${encodeURIComponent(x.name)}`))}>Delete</button></td>
                </tr>
              ))}
            </tbody>
          </table>
          <form class="inline" onSubmit={(e) => { e.preventDefault(); run(async () => { await api('PUT', `${base}/secrets/${encodeURIComponent(secretName)}`, { value: secretValue }); setSecretName(''); setSecretValue(''); }); }}>
            <input name="secret-name" placeholder="NAME" value={secretName} onInput={(e) => setSecretName((e.target as HTMLInputElement).value)} />
            <input name="secret-value" type="password" autocomplete="off" placeholder="value (write-only)" value={secretValue} onInput={(e) => setSecretValue((e.target as HTMLInputElement).value)} />
            <button type="submit" disabled={!secretName || !secretValue}>Set secret</button>
          </form>
        </>
      )}
    </div>
  );
}

function Repos({ me }: { me: Me | null }) {
  const [repos, setRepos] = useState<Repo[]>([]);
  const [error, setError] = useState<unknown>(null);
  const { query } = useLocation();
  const highlight = query.get('delivery') ? Number(query.get('delivery')) : null;
  const load = useCallback(() => {
    api<{ repos: Repo[] }>('GET', '/api/v1/repos').then((r) => setRepos(r.repos), setError);
  }, []);
  useEffect(() => { load(); }, [load]);
  return (
    <section>
      <h2>Repositories</h2>
      <ErrorBox error={error} />
      <table class="list">
        <thead><tr><th>repository</th><th>forge</th><th>webhook URL</th><th>badge</th></tr></thead>
        <tbody>
          {repos.map((r) => (
            <tr>
              <td>{r.name}</td><td>{r.provider}</td>
              <td><code>{location.origin}/hooks/{r.provider}/{r.id}</code></td>
              <td><code>{location.origin}/badge/{r.name}/{r.default_branch}.svg</code></td>
            </tr>
          ))}
        </tbody>
      </table>
      {!isAdmin(me) && <p class="sub">Admins add repositories; maintainers of a repository set its secrets.</p>}
      {repos.map((r) => <RepoPanel repo={r} writable={canWrite(me, r.id)} reload={load} highlight={highlight} />)}
    </section>
  );
}

export function Settings({ me }: { me: Me | null }) {
  return (
    <Page title="Settings">
      <Repos me={me} />
      {me && me.user_id !== undefined && <Tokens />}
      {isAdmin(me) && <Users />}
    </Page>
  );
}
