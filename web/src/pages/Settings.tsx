import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, isAdmin, Me } from '../api';
import { ago, ErrorBox, Page } from '../util';

interface Token { id: number; name: string; scope: string; user: string; expires_at: string; last_used_at: string | null; revoked: boolean }
interface User { id: number; username: string; role: string; disabled: boolean; maintains: number[] }
interface Repo { id: number; name: string; provider: string; clone_url: string }

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

function Repos({ admin }: { admin: boolean }) {
  const [repos, setRepos] = useState<Repo[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<{ repos: Repo[] }>('GET', '/api/v1/repos').then((r) => setRepos(r.repos), setError);
  }, []);
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
              <td><code>{location.origin}/badge/{r.name}/main.svg</code></td>
            </tr>
          ))}
        </tbody>
      </table>
      {!admin && <p class="sub">Admins add repositories and their webhook secrets.</p>}
    </section>
  );
}

export function Settings({ me }: { me: Me | null }) {
  return (
    <Page title="Settings">
      <Repos admin={isAdmin(me)} />
      {me && me.user_id !== undefined && <Tokens />}
      {isAdmin(me) && <Users />}
    </Page>
  );
}
