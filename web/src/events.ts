// Live changes from GET /api/v1/events (Server-Sent Events): one EventSource for the page,
// shared by every component that listens. A "resync" (or a reconnect) tells listeners to
// fetch what they show again.
export interface LiveEvent {
  type: 'pipeline' | 'job' | 'resync';
  id?: number;
  pipeline_id?: number;
  repo_id?: number;
  state?: string;
}

type Handler = (e: LiveEvent) => void;
const handlers = new Set<Handler>();
let source: EventSource | null = null;

function open() {
  if (source) return;
  source = new EventSource('/api/v1/events');
  const deliver = (e: LiveEvent) => handlers.forEach((h) => h(e));
  for (const type of ['pipeline', 'job'] as const) {
    source.addEventListener(type, (m) => deliver(JSON.parse((m as MessageEvent).data) as LiveEvent));
  }
  source.addEventListener('resync', () => deliver({ type: 'resync' }));
  // After a reconnect nothing tells what was missed: fetch again.
  let first = true;
  source.addEventListener('hello', () => {
    if (!first) deliver({ type: 'resync' });
    first = false;
  });
}

export function subscribe(h: Handler): () => void {
  handlers.add(h);
  open();
  return () => {
    handlers.delete(h);
    if (handlers.size === 0 && source) {
      source.close();
      source = null;
    }
  };
}
