import { useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { navigate } from '../router';

export function Login({ next, onLogin }: { next: string; onLogin: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await api('POST', '/api/v1/session', { username, password });
      onLogin();
      navigate(next.startsWith('/ui') ? next : '/ui/', true);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="login" onSubmit={submit}>
      <h1>Sign in to Assay</h1>
      <label>
        Username
        <input name="username" autocomplete="username" value={username}
          onInput={(e) => setUsername((e.target as HTMLInputElement).value)} required />
      </label>
      <label>
        Password
        <input name="password" type="password" autocomplete="current-password" value={password}
          onInput={(e) => setPassword((e.target as HTMLInputElement).value)} required />
      </label>
      {error && <p class="error" role="alert">{error}</p>}
      <button type="submit" disabled={busy}>Sign in</button>
    </form>
  );
}
