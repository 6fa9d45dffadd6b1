import { useEffect, useMemo, useState } from 'preact/hooks';
import { api } from '../api';
import { Chart } from '../chart';
import { subscribe } from '../events';
import { ago, ErrorBox, Page, shortSha } from '../util';

export interface Metric { name: string; value: number | null; lo: number | null; hi: number | null; n: number }
interface Verdict { metric: string; passed: boolean; explanation: string }
export interface EvalRun {
  id: number;
  job_id: number;
  pipeline_id: number;
  repo_id: number;
  name: string;
  job_name: string;
  ref: string;
  commit_sha: string;
  complete: boolean;
  passed: boolean | null;
  baseline_run_id: number | null;
  examples: number;
  error: string;
  model: { name: string; version: number } | null;
  metrics?: Metric[];
  verdicts?: Verdict[];
  created_at: string;
}
interface Diff {
  regressed: { id: string; input: string; expected: string; baseline_output: string; candidate_output: string }[];
  fixed: { id: string; input: string; expected: string; baseline_output: string; candidate_output: string }[];
  still_wrong: unknown[];
  still_passing: number;
}

const fmt = (v: number | null | undefined) => (v === null || v === undefined ? '–' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3));

function Verdicts({ run }: { run: EvalRun }) {
  if (run.passed === null) return <span class="state">no gate</span>;
  return <span class={`state state-${run.passed ? 'succeeded' : 'failed'}`}>{run.passed ? 'gate passed' : 'gate failed'}</span>;
}

export function Evals() {
  const [runs, setRuns] = useState<EvalRun[]>([]);
  const [error, setError] = useState<unknown>(null);
  const load = () => api<{ evals: EvalRun[] }>('GET', '/api/v1/evals?limit=100').then((r) => setRuns(r.evals), setError);
  useEffect(() => {
    load();
    return subscribe((e) => {
      if ((e.type === 'job' && e.state && ['succeeded', 'failed'].includes(e.state)) || e.type === 'resync') load();
    });
  }, []);
  return (
    <Page title="Evals">
      <ErrorBox error={error} />
      <table class="list evals">
        <thead><tr><th>eval</th><th>gate</th><th>commit</th><th>model</th><th>metrics</th><th>when</th></tr></thead>
        <tbody>
          {runs.map((r) => (
            <tr data-eval={r.id}>
              <td><a href={`/ui/evals/${r.id}`}>{r.name}</a><div class="sub">{r.job_name} · #{r.pipeline_id}</div></td>
              <td><Verdicts run={r} /></td>
              <td><code>{shortSha(r.commit_sha)}</code> <span class="sub">{r.ref.replace(/^refs\/heads\//, '')}</span></td>
              <td>{r.model ? `${r.model.name} v${r.model.version}` : ''}</td>
              <td>{(r.metrics ?? []).slice(0, 4).map((m) => <span class="metric">{m.name} {fmt(m.value)}</span>)}</td>
              <td>{ago(r.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {runs.length === 0 && !error && <p class="empty">No evals yet: add an eval step to a pipeline (docs/evals.md).</p>}
    </Page>
  );
}

function ExampleList({ title, rows }: { title: string; rows: Diff['regressed'] }) {
  if (rows.length === 0) return null;
  return (
    <section>
      <h2>{title} ({rows.length})</h2>
      <table class="list examples">
        <thead><tr><th>example</th><th>input</th><th>expected</th><th>baseline</th><th>this run</th></tr></thead>
        <tbody>
          {rows.slice(0, 200).map((e) => (
            <tr><td>{e.id}</td><td class="text">{e.input}</td><td class="text">{e.expected}</td><td class="text">{e.baseline_output}</td><td class="text">{e.candidate_output}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function EvalDetail({ id }: { id: number }) {
  const [run, setRun] = useState<EvalRun | null>(null);
  const [base, setBase] = useState<EvalRun | null>(null);
  const [diff, setDiff] = useState<Diff | null>(null);
  const [trend, setTrend] = useState<EvalRun[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    (async () => {
      try {
        const r = await api<EvalRun>('GET', `/api/v1/evals/${id}?examples=none`);
        setRun(r);
        if (r.baseline_run_id) {
          setBase(await api<EvalRun>('GET', `/api/v1/evals/${r.baseline_run_id}?examples=none`));
          setDiff(await api<Diff>('GET', `/api/v1/evals/${id}/diff`));
        }
        const branch = r.ref.replace(/^refs\/heads\//, '');
        const t = await api<{ evals: EvalRun[] }>('GET', `/api/v1/evals?repo=${r.repo_id}&name=${encodeURIComponent(r.name)}&branch=${encodeURIComponent(branch)}&limit=50`);
        setTrend(t.evals.slice().reverse());
      } catch (e) {
        setError(e);
      }
    })();
  }, [id]);
  const chart = useMemo(() => {
    const names = [...new Set(trend.flatMap((t) => (t.metrics ?? []).map((m) => m.name)))].filter((n) => !n.includes('latency') && !n.includes('tokens')).slice(0, 3);
    const pick = (t: EvalRun, n: string, k: 'value' | 'lo' | 'hi') => (t.metrics ?? []).find((m) => m.name === n)?.[k] ?? null;
    return {
      x: trend.map((_, i) => i + 1),
      series: names.map((n) => ({ label: n, values: trend.map((t) => pick(t, n, 'value')), lo: trend.map((t) => pick(t, n, 'lo')), hi: trend.map((t) => pick(t, n, 'hi')) })),
    };
  }, [trend]);
  if (!run) return <Page title={`Eval ${id}`}><ErrorBox error={error} /></Page>;
  const baseMetric = (n: string) => base?.metrics?.find((m) => m.name === n);
  return (
    <Page title={<>{run.name} <Verdicts run={run} /></>} actions={<a href={`/ui/pipelines/${run.pipeline_id}`}>pipeline #{run.pipeline_id}</a>}>
      <ErrorBox error={error} />
      <p class="job-summary">
        <code>{shortSha(run.commit_sha)}</code> on {run.ref} · {run.examples} examples
        {run.model && <> · model {run.model.name} v{run.model.version}</>}
        {base && <> · baseline: <a href={`/ui/evals/${base.id}`}>eval {base.id}</a> (<code>{shortSha(base.commit_sha)}</code>)</>}
      </p>
      <table class="list metrics">
        <thead><tr><th>metric</th><th>this run</th><th>95% interval</th><th>baseline</th><th>change</th></tr></thead>
        <tbody>
          {(run.metrics ?? []).map((m) => {
            const b = baseMetric(m.name);
            const delta = b && m.value !== null && b.value !== null ? m.value - b.value : null;
            // Latency, error rate, tokens and cost are better lower.
            const better = delta === null || delta === 0 ? 0 : (/latency|error_rate|tokens|cost/.test(m.name) ? -delta : delta) > 0 ? 1 : -1;
            return (
              <tr data-metric={m.name}>
                <td>{m.name}</td>
                <td>{fmt(m.value)}</td>
                <td>{m.lo !== null && m.hi !== null ? `[${fmt(m.lo)}, ${fmt(m.hi)}]` : ''}</td>
                <td>{b ? fmt(b.value) : ''}</td>
                <td class={better > 0 ? 'up' : better < 0 ? 'down' : ''}>{delta === null ? '' : `${delta > 0 ? '+' : ''}${fmt(delta)}`}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {(run.verdicts ?? []).length > 0 && (
        <ul class="verdicts">
          {run.verdicts!.map((v) => <li class={v.passed ? 'ok' : 'bad'} data-verdict={v.metric}>{v.passed ? '✓' : '✗'} {v.explanation}</li>)}
        </ul>
      )}
      {trend.length > 1 && (
        <section>
          <h2>Trend on {run.ref.replace(/^refs\/heads\//, '')} (last {trend.length} runs)</h2>
          <Chart x={chart.x} series={chart.series} xLabel="run" />
        </section>
      )}
      {diff && (
        <>
          <p class="sub">Against the baseline: {diff.regressed.length} regressed, {diff.fixed.length} fixed, {diff.still_wrong.length} still wrong, {diff.still_passing} still passing.</p>
          <ExampleList title="Regressed" rows={diff.regressed} />
          <ExampleList title="Fixed" rows={diff.fixed} />
        </>
      )}
    </Page>
  );
}
