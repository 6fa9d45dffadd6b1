// The dashboard's shell: who is signed in, the navigation, and the page for the URL.
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, ApiError, Me, setUnauthenticatedHandler } from './api';
import { Agents, Queue } from './pages/Agents';
import { DeploymentDetail } from './pages/Deployment';
import { EnvironmentDetail, Environments } from './pages/Environments';
import { EvalDetail, Evals } from './pages/Evals';
import { JobLog } from './pages/JobLog';
import { Login } from './pages/Login';
import { ModelDetail, Models } from './pages/Models';
import { Pipeline } from './pages/Pipeline';
import { Pipelines } from './pages/Pipelines';
import { Settings } from './pages/Settings';
import { match, navigate, onLinkClick, useLocation } from './router';
import './style.css';

function NotFound({ path }: { path: string }) {
  return (
    <section class="page">
      <h1>Not found</h1>
      <p>There is no page at <code>{path}</code>. <a href="/ui/">Pipelines</a></p>
    </section>
  );
}

function App() {
  const { path, query, hash } = useLocation();
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const loadMe = useCallback(async () => {
    try {
      setMe(await api<Me>('GET', '/api/v1/me'));
    } catch (e) {
      // Anonymous read (a public dashboard) or signed out.
      if (e instanceof ApiError && e.status === 401) setMe(null);
      else setMe(null);
    }
  }, []);
  useEffect(() => {
    setUnauthenticatedHandler(() => {
      if (!location.pathname.startsWith('/ui/login')) {
        navigate(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
      }
    });
    loadMe();
  }, []);
  if (path === '/' || path === '/ui') {
    navigate('/ui/', true);
    return null;
  }
  const logout = async () => {
    try {
      await api('DELETE', '/api/v1/session');
    } finally {
      setMe(null);
      navigate('/ui/login', true);
    }
  };
  let page;
  let m: Record<string, string> | null;
  if (path.startsWith('/ui/login')) page = <Login next={query.get('next') ?? '/ui/'} onLogin={loadMe} />;
  else if (me === undefined) page = <p class="loading">Loading…</p>;
  else if (path === '/ui/' || path === '/ui/pipelines') page = <Pipelines />;
  else if ((m = match('/ui/pipelines/:id', path))) page = <Pipeline id={Number(m.id)} me={me} />;
  else if ((m = match('/ui/jobs/:id/log', path))) page = <JobLog id={Number(m.id)} me={me} hash={hash} />;
  else if (path === '/ui/agents') page = <Agents me={me} />;
  else if (path === '/ui/queue') page = <Queue />;
  else if (path === '/ui/settings') page = <Settings me={me} />;
  else if (path === '/ui/evals') page = <Evals />;
  else if ((m = match('/ui/evals/:id', path))) page = <EvalDetail id={Number(m.id)} />;
  else if (path === '/ui/models') page = <Models />;
  else if ((m = match('/ui/models/:name', path))) page = <ModelDetail name={m.name} />;
  else if (path === '/ui/environments') page = <Environments />;
  else if ((m = match('/ui/repos/:id/environments/:name', path))) page = <EnvironmentDetail repoId={Number(m.id)} name={m.name} me={me} />;
  else if ((m = match('/ui/deployments/:id', path))) page = <DeploymentDetail id={Number(m.id)} me={me} />;
  else page = <NotFound path={path} />;
  return (
    <div class="shell" onClick={onLinkClick}>
      <nav class="top">
        <a class="brand" href="/ui/">Assay</a>
        <a href="/ui/">Pipelines</a>
        <a href="/ui/queue">Queue</a>
        <a href="/ui/agents">Agents</a>
        <a href="/ui/evals">Evals</a>
        <a href="/ui/models">Models</a>
        <a href="/ui/environments">Environments</a>
        <a href="/ui/settings">Settings</a>
        <span class="spacer" />
        {me ? (
          <span class="who">
            <span data-me={me.name}>{me.name}</span> <span class="sub">{me.role}</span>{' '}
            {me.kind === 'session' && <button class="link" onClick={logout}>Sign out</button>}
          </span>
        ) : (
          me === null && !path.startsWith('/ui/login') && <a href={`/ui/login?next=${encodeURIComponent(path)}`}>Sign in</a>
        )}
      </nav>
      <main>{page}</main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
