// The REST API (/api/v1) as the dashboard uses it: the session cookie goes along by itself;
// every request that changes something carries the CSRF token from the assay_csrf cookie.

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

export function csrfToken(): string {
  const m = document.cookie.match(/(?:^|;\s*)assay_csrf=([0-9a-f]{64})/);
  return m ? m[1] : '';
}

let onUnauthenticated: () => void = () => {};
export function setUnauthenticatedHandler(f: () => void) {
  onUnauthenticated = f;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Assay-CSRF'] = csrfToken();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!r.ok) {
    const e = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
    if (r.status === 401 && path !== '/api/v1/session') onUnauthenticated();
    throw new ApiError(r.status, e?.code ?? 'error', e?.message ?? `${r.status} ${r.statusText}`);
  }
  return parsed as T;
}

export interface Job {
  id: number;
  pipeline_id: number;
  name: string;
  state: string;
  needs: string[];
  attempt: number;
  max_attempts: number;
  agent: string | null;
  exit_code: number | null;
  message: string | null;
  gpu_indices: number[];
  runs_on: { cpus?: number; gpus?: number; labels?: string[] };
  created_at: string | null;
  queued_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  waiting?: string | null;
  repo?: string;
  steps?: { index: number; name: string; log_offset: number; started_at: string | null }[];
}

export interface Pipeline {
  id: number;
  repo: string;
  event: string;
  ref: string;
  commit_sha: string;
  state: string;
  message: string | null;
  trusted: boolean;
  notes: string[];
  pr_number: number | null;
  errors: string[];
  created_at: string | null;
  finished_at: string | null;
  delivery_id?: number | null;
  repo_id?: number;
  rerun_of?: number | null;
  commit_author?: string | null;
  commit_message?: string | null;
  jobs?: Job[];
}

export interface Agent {
  id: number;
  name: string;
  state: string;
  version: string;
  labels: string[];
  cpu_slots: number;
  memory_gb: number;
  last_seen_at: string | null;
  access: string;
  accepting: boolean;
  state_reason: string | null;
  drained: boolean;
  drain_reason: string | null;
  executors: string[];
  gpus: { index: number; uuid: string; name?: string; memory_mb?: number }[];
  gpu_usage?: { index: number; utilization_pct: number; memory_used_mb: number }[] | null;
  gpu_usage_at?: string | null;
  jobs?: { job_id: number; pipeline_id: number }[];
  running?: { id: number; name: string; pipeline_id: number }[];
}

export interface Me {
  name: string;
  kind: string;
  role: string;
  scope: string;
  user_id?: number;
  maintains: number[];
}

export function canWrite(me: Me | null, repoId?: number): boolean {
  if (!me || me.scope === 'read') return false;
  if (me.role === 'admin' || me.role === 'maintainer') return true;
  return repoId !== undefined && me.maintains.includes(repoId);
}
export function isAdmin(me: Me | null): boolean {
  return !!me && me.role === 'admin' && me.scope === 'admin';
}

// Deployments (docs/deployments.md): an environment of a repository, and the deployments that
// move its traffic. Model deployments carry model + version, service images image.
export interface DeployServer { name: string; address: string }
export interface Live { deployment_id: number; model?: string; version?: number; image?: string; servers: DeployServer[] }
export interface Environment {
  id: number;
  repo_id: number;
  repo: string;
  name: string;
  branches: string[];
  required_approvals: number;
  target: { kind?: string; runtime_api?: string; backend?: string; command?: string[] } | null;
  analysis: { metrics?: { name: string }[]; watch?: string | number } | null;
  alias: string;
  live: Live | null;
  active_deployment: number | null;
  created_at: string;
  updated_at: string;
}
export interface Deployment {
  id: number;
  environment: string;
  environment_id: number;
  repo_id: number;
  repo: string;
  state: string;
  model?: string;
  version?: number;
  image?: string;
  servers: DeployServer[];
  ref: string;
  // As given: {"canary": {...}}, {"blue_green": {...}} or {"rolling": {...}}.
  strategy: Record<string, Record<string, unknown>>;
  step: number;
  weight: number;
  message: string;
  created_by: string;
  approvals: number;
  approvers: string[];
  previous: { servers?: DeployServer[]; model?: string; version?: number; image?: string } | null;
  requested: { action: string; by: string; reason: string; full: boolean } | null;
  alias_moved: boolean;
  pipeline_id: number | null;
  job_id: number | null;
  superseded_by: number | null;
  rollback_of: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  watch_until: string | null;
}
export interface DeploymentEvent {
  id: number;
  at: string;
  step: number;
  kind: string;
  message: string;
  data: { analysis?: string; metric?: string; phase?: string; values?: (number | string)[]; message?: string } | null;
}
// The states in which a deployment holds its environment (and may still change by itself).
export const ACTIVE_DEPLOYMENT = ['pending_approval', 'progressing', 'paused', 'watching'];
