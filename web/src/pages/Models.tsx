import { useEffect, useMemo, useState } from 'preact/hooks';
import { api } from '../api';
import { Chart } from '../chart';
import { ago, ErrorBox, Page, shortSha } from '../util';

interface Model { name: string; description: string; aliases: Record<string, number>; latest_version: number | null; versions: number; updated_at: string }
interface Version {
  model: string;
  version: number;
  status: string;
  description: string;
  source: { repo: string; commit: string; pipeline_id: number | null; job_id: number | null; job: string; path: string };
  files: number;
  bytes: number;
  params: Record<string, unknown>;
  metrics: Record<string, number>;
  parent_version: number | null;
  aliases: string[];
  created_at: string;
  // GET .../versions/N only: the eval runs of the pipeline that registered it.
  evals?: { id: number; name: string; job_id: number; passed: boolean | null; metrics?: { name: string; value: number }[] }[];
}
interface AliasEvent { from_version: number | null; to_version: number | null; principal: string; actor: string | null; reason: string; at: string }
interface Train { name: string; series: Record<string, [number, number, number][]> }

export function Models() {
  const [models, setModels] = useState<Model[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<{ models: Model[] }>('GET', '/api/v1/models').then((r) => setModels(r.models), setError);
  }, []);
  return (
    <Page title="Models">
      <ErrorBox error={error} />
      <table class="list models">
        <thead><tr><th>model</th><th>versions</th><th>aliases</th><th>updated</th></tr></thead>
        <tbody>
          {models.map((m) => (
            <tr data-model={m.name}>
              <td><a href={`/ui/models/${encodeURIComponent(m.name)}`}>{m.name}</a><div class="sub">{m.description}</div></td>
              <td>{m.versions}{m.latest_version ? ` (latest v${m.latest_version})` : ''}</td>
              <td>{Object.entries(m.aliases).map(([a, v]) => <span class="alias">{a} → v{v}</span>)}</td>
              <td>{ago(m.updated_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {models.length === 0 && !error && <p class="empty">No models registered yet (docs/models.md).</p>}
    </Page>
  );
}

function LossCurves({ job }: { job: number }) {
  const [train, setTrain] = useState<Train[]>([]);
  useEffect(() => {
    api<{ train: Train[] }>('GET', `/api/v1/jobs/${job}/train?points=2000`).then((r) => setTrain(r.train), () => setTrain([]));
  }, [job]);
  const charts = useMemo(
    () =>
      train.map((t) => {
        const names = Object.keys(t.series).slice(0, 4);
        const steps = [...new Set(names.flatMap((n) => t.series[n].map((p) => p[0])))].sort((a, b) => a - b);
        return {
          name: t.name,
          x: steps,
          series: names.map((n) => {
            const at = new Map(t.series[n].map((p) => [p[0], p[1]]));
            return { label: n, values: steps.map((s) => at.get(s) ?? null) };
          }),
        };
      }),
    [train],
  );
  if (charts.length === 0) return null;
  return <>{charts.map((c) => <Chart title={`training: ${c.name}`} x={c.x} series={c.series} xLabel="step" />)}</>;
}

export function ModelDetail({ name }: { name: string }) {
  const [model, setModel] = useState<Model | null>(null);
  const [versions, setVersions] = useState<Version[]>([]);
  const [history, setHistory] = useState<Record<string, AliasEvent[]>>({});
  const [open, setOpen] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    (async () => {
      try {
        const m = await api<Model>('GET', `/api/v1/models/${encodeURIComponent(name)}`);
        setModel(m);
        const v = await api<{ versions: Version[] }>('GET', `/api/v1/models/${encodeURIComponent(name)}/versions`);
        setVersions(v.versions);
        const h: Record<string, AliasEvent[]> = {};
        for (const a of Object.keys(m.aliases)) {
          h[a] = (await api<{ history: AliasEvent[] }>('GET', `/api/v1/models/${encodeURIComponent(name)}/aliases/${encodeURIComponent(a)}/history`)).history;
        }
        setHistory(h);
      } catch (e) {
        setError(e);
      }
    })();
  }, [name]);
  const metricNames = [...new Set(versions.flatMap((v) => Object.keys(v.metrics ?? {})))].slice(0, 6);
  const shown = versions.find((v) => v.version === open);
  // Eval scores of the opened version (only its own GET carries them).
  const [scores, setScores] = useState<Version | null>(null);
  useEffect(() => {
    setScores(null);
    if (open === null) return;
    api<Version>('GET', `/api/v1/models/${encodeURIComponent(name)}/versions/${open}`).then(setScores, setError);
  }, [name, open]);
  return (
    <Page title={name}>
      <ErrorBox error={error} />
      {model?.description && <p>{model.description}</p>}
      <table class="list versions">
        <thead><tr><th>version</th><th>status</th><th>aliases</th><th>from</th><th>parent</th>{metricNames.map((m) => <th>{m}</th>)}<th>registered</th></tr></thead>
        <tbody>
          {versions.map((v) => (
            <tr data-version={v.version} class={open === v.version ? 'selected' : ''}>
              <td><button class="link" onClick={() => setOpen(open === v.version ? null : v.version)}>v{v.version}</button></td>
              <td>{v.status}</td>
              <td>{v.aliases.join(', ')}</td>
              <td>
                {v.source.pipeline_id && <a href={`/ui/pipelines/${v.source.pipeline_id}`}>#{v.source.pipeline_id}</a>} {v.source.job}{' '}
                {v.source.commit && <code>{shortSha(v.source.commit)}</code>}
              </td>
              <td>{v.parent_version ? `v${v.parent_version}` : ''}</td>
              {metricNames.map((m) => <td>{typeof v.metrics?.[m] === 'number' ? v.metrics[m].toFixed(4) : ''}</td>)}
              <td>{ago(v.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown && (
        <section>
          <h2>v{shown.version}: lineage and training</h2>
          <dl class="trigger">
            <dt>repository</dt><dd>{shown.source.repo}</dd>
            <dt>job</dt><dd>{shown.source.job_id ? <a href={`/ui/jobs/${shown.source.job_id}/log`}>{shown.source.job}</a> : shown.source.job}</dd>
            <dt>path</dt><dd><code>{shown.source.path}</code></dd>
            <dt>files</dt><dd>{shown.files} ({(shown.bytes / 1048576).toFixed(1)} MiB)</dd>
            <dt>params</dt><dd><code>{JSON.stringify(shown.params)}</code></dd>
          </dl>
          {scores && (scores.evals ?? []).length > 0 && (
            <table class="list evals" data-version-evals={shown.version}>
              <thead><tr><th>eval</th><th>gate</th><th>scores</th></tr></thead>
              <tbody>
                {(scores.evals ?? []).map((e) => (
                  <tr data-eval-run={e.id}>
                    <td><a href={`/ui/evals/${e.id}`}>{e.name}</a></td>
                    <td>{e.passed === null ? 'no gate' : e.passed ? 'passed' : 'failed'}</td>
                    <td>{(Array.isArray(e.metrics) ? e.metrics : []).slice(0, 6).map((m) => (
                      <span class="metric">{m.name} {typeof m.value === 'number' ? m.value.toFixed(3) : ''} </span>
                    ))}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {shown.source.job_id && <LossCurves job={shown.source.job_id} />}
        </section>
      )}
      {Object.entries(history).map(([alias, events]) => (
        <section>
          <h2>Alias {alias}</h2>
          <table class="list">
            <thead><tr><th>when</th><th>change</th><th>by</th><th>reason</th></tr></thead>
            <tbody>
              {events.map((e) => (
                <tr><td>{ago(e.at)}</td><td>{e.from_version ? `v${e.from_version}` : '–'} → {e.to_version ? `v${e.to_version}` : 'deleted'}</td><td>{e.principal}{e.actor ? ` (${e.actor})` : ''}</td><td>{e.reason}</td></tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
    </Page>
  );
}
