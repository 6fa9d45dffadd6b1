// A job's log: opens at its end (one range request, whatever the log's size), loads earlier
// pages as the reader scrolls up, follows the live tail through Server-Sent Events, and draws
// only the lines in view (a 100 MB log keeps a bounded window of pages in memory).
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, canWrite, Job, Me } from '../api';
import { parseAnsi } from '../ansi';
import { subscribe } from '../events';
import { duration, ErrorBox, Page, State } from '../util';

const PAGE = 256 * 1024; // bytes per range request
const MAX_WINDOW = 16 * 1024 * 1024; // bytes kept; farther pages are dropped
const ROW = 18; // px per line (the CSS sets the same)

interface Line {
  offset: number; // byte offset of its first byte in the log
  text: string;
}

// Splits bytes that start at `start` into lines; a last line without '\n' is `partial`.
function split(bytes: Uint8Array, start: number): { lines: Line[]; partial: Line | null } {
  const lines: Line[] = [];
  const dec = new TextDecoder('utf-8');
  let from = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 10) {
      lines.push({ offset: start + from, text: dec.decode(bytes.subarray(from, i)) });
      from = i + 1;
    }
  }
  const partial = from < bytes.length ? { offset: start + from, text: dec.decode(bytes.subarray(from)) } : null;
  return { lines, partial };
}

// Issue 11: where a step begins in the log (GET /api/v1/jobs/ID "steps").
interface StepMark {
  index: number;
  name: string;
  log_offset: number;
  started_at: string | null;
}

// What the virtual list draws: a log line, or the header of a step (then its lines follow
// unless it is folded).
type Row = { line: Line; i: number } | { step: StepMark; lines: number };

// The rows for the loaded lines: a header where each step begins (only for jobs of two or
// more steps), and no lines of a folded step. rowOf maps a line's index to its row (-1:
// folded away).
export function buildRows(lines: Line[], steps: StepMark[], folded: Set<number>): { rows: Row[]; rowOf: number[] } {
  const rows: Row[] = [];
  const rowOf: number[] = new Array(lines.length).fill(-1);
  if (steps.length < 2) {
    lines.forEach((line, i) => {
      rowOf[i] = rows.length;
      rows.push({ line, i });
    });
    return { rows, rowOf };
  }
  const sorted = [...steps].sort((a, b) => a.log_offset - b.log_offset);
  // One pass for the step of each line and the lines of each step, one to lay out the rows.
  const stepOf: number[] = new Array(lines.length);
  const counts: number[] = new Array(sorted.length).fill(0);
  let k = -1;
  lines.forEach((line, i) => {
    while (k + 1 < sorted.length && sorted[k + 1].log_offset <= line.offset) k++;
    stepOf[i] = k;
    if (k >= 0) counts[k]++;
  });
  let shown = -1;
  lines.forEach((line, i) => {
    while (shown < stepOf[i]) {
      shown++;
      rows.push({ step: sorted[shown], lines: counts[shown] });
    }
    if (stepOf[i] >= 0 && folded.has(sorted[stepOf[i]].index)) return;
    rowOf[i] = rows.length;
    rows.push({ line, i });
  });
  return { rows, rowOf };
}

async function fetchRange(job: number, from: number, to: number): Promise<{ bytes: Uint8Array; size: number }> {
  const r = await fetch(`/api/v1/jobs/${job}/log`, {
    headers: { Range: `bytes=${from}-${to - 1}` },
    credentials: 'same-origin',
  });
  if (r.status === 416) {
    const size = Number((r.headers.get('Content-Range') ?? '').split('/')[1] ?? 0);
    return { bytes: new Uint8Array(), size };
  }
  if (!r.ok && r.status !== 206) throw new Error(`log: ${r.status}`);
  const range = r.headers.get('Content-Range');
  const size = range ? Number(range.split('/')[1]) : Number(r.headers.get('Content-Length') ?? 0);
  return { bytes: new Uint8Array(await r.arrayBuffer()), size };
}

async function logSize(job: number): Promise<number> {
  const r = await fetch(`/api/v1/jobs/${job}/log`, { headers: { Range: 'bytes=0-0' }, credentials: 'same-origin' });
  if (r.status === 206 || r.status === 416) return Number((r.headers.get('Content-Range') ?? '').split('/')[1] ?? 0);
  return 0;
}

export function JobLog({ id, me, hash }: { id: number; me: Me | null; hash: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [lines, setLines] = useState<Line[]>([]);
  const [start, setStart] = useState(0); // byte offset of lines[0]
  const [end, setEnd] = useState(0); // bytes loaded up to (exclusive)
  const [size, setSize] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const [search, setSearch] = useState('');
  const [follow, setFollow] = useState(true);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  const [folded, setFolded] = useState<Set<number>>(new Set());
  const box = useRef<HTMLDivElement>(null);
  const partial = useRef<Line | null>(null);
  // The first range is in: only then does the live tail start, from where that range ended
  // (starting both at once would interleave them).
  const [loaded, setLoaded] = useState(false);
  const endRef = useRef(0);
  const loadingEarlier = useRef(false);
  const target = useMemo(() => {
    const m = hash.match(/^#b(\d+)$/);
    return m ? Number(m[1]) : null;
  }, [hash]);

  const { rows, rowOf } = useMemo(() => buildRows(lines, (job?.steps ?? []) as StepMark[], folded), [lines, job?.steps, folded]);

  const loadJob = useCallback(async () => {
    try {
      setJob(await api<Job>('GET', `/api/v1/jobs/${id}`));
    } catch (e) {
      setError(e);
    }
  }, [id]);

  // Opens at the end, or at the linked line.
  useEffect(() => {
    let cancelled = false;
    (async () => {
      await loadJob();
      try {
        const total = await logSize(id);
        const from = target !== null ? Math.max(0, Math.min(target, total) - PAGE / 2) : Math.max(0, total - PAGE);
        const { bytes, size: s } = await fetchRange(id, from, Math.min(total, from + PAGE));
        if (cancelled) return;
        const { lines: ls, partial: p } = split(bytes, from);
        // A page that starts mid-line: drop the broken first line unless it starts the log.
        const first = from > 0 && ls.length > 0 ? ls.slice(1) : ls;
        partial.current = p;
        setLines(p ? [...first, p] : first);
        setStart(first.length ? first[0].offset : from);
        setEnd(from + bytes.length);
        endRef.current = from + bytes.length;
        setSize(s);
        if (target !== null) setFollow(false);
        setLoaded(true);
      } catch (e) {
        if (!cancelled) setError(e);
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [id]);

  // Live tail: from the loaded end, while the job runs.
  useEffect(() => {
    if (!loaded || !job || !['queued', 'pending', 'assigned', 'running'].includes(job.state)) return;
    const es = new EventSource(`/api/v1/jobs/${id}/log?follow=1&offset=${endRef.current}`);
    const enc = new TextEncoder();
    es.onmessage = (m) => {
      const piece = JSON.parse(m.data) as string;
      const bytes = enc.encode(piece);
      setLines((ls) => {
        const prev = partial.current;
        const base = prev ? ls.slice(0, -1) : ls;
        const text = (prev ? prev.text : '') + piece;
        const at = prev ? prev.offset : Number(m.lastEventId) - bytes.length;
        const parts = text.split('\n');
        const out = [...base];
        let off = at;
        for (let i = 0; i < parts.length - 1; i++) {
          out.push({ offset: off, text: parts[i] });
          off += enc.encode(parts[i]).length + 1;
        }
        const rest = parts[parts.length - 1];
        partial.current = rest ? { offset: off, text: rest } : null;
        if (rest) out.push(partial.current!);
        return out;
      });
      endRef.current = Number(m.lastEventId);
      setEnd(endRef.current);
      setSize((s) => Math.max(s, endRef.current));
    };
    es.addEventListener('end', () => {
      es.close();
      loadJob();
    });
    return () => es.close();
  }, [loaded, job?.state, id]);

  useEffect(
    () =>
      subscribe((e) => {
        if (e.type === 'job' && e.id === id) loadJob();
      }),
    [id],
  );

  const loadEarlier = useCallback(async () => {
    if (loadingEarlier.current || start === 0) return;
    loadingEarlier.current = true;
    try {
      const from = Math.max(0, start - PAGE);
      const { bytes } = await fetchRange(id, from, start);
      const { lines: ls, partial: p } = split(bytes, from);
      const got = p ? [...ls, p] : ls;
      // The first line of the old window was whole; so is the last of this page (it ends
      // where that one began). Drop this page's broken first line unless it starts the log.
      const whole = from > 0 && got.length > 1 ? got.slice(1) : got;
      const added = whole.length;
      setLines((old) => {
        const merged = [...whole, ...old];
        // Bound the window: drop lines from the far end (the bottom) when it grows too big.
        let bytesKept = (whole.length ? end - whole[0].offset : 0);
        let cut = merged.length;
        while (bytesKept > MAX_WINDOW && cut > 0) {
          cut--;
          bytesKept -= merged[cut].text.length + 1;
        }
        return merged.slice(0, cut);
      });
      setStart(whole.length ? whole[0].offset : from);
      setFollow(false);
      if (box.current) box.current.scrollTop += added * ROW;
    } catch (e) {
      setError(e);
    } finally {
      loadingEarlier.current = false;
    }
  }, [start, end, id]);

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    setTop(el.scrollTop);
    setHeight(el.clientHeight);
    if (el.scrollTop < ROW * 20) loadEarlier();
    setFollow(el.scrollTop + el.clientHeight >= el.scrollHeight - ROW * 2);
  };

  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    setHeight(el.clientHeight);
    if (target !== null) {
      const i = lines.findIndex((l, k) => l.offset <= target && (k + 1 === lines.length || lines[k + 1].offset > target));
      if (i >= 0) el.scrollTop = Math.max(0, Math.max(0, rowOf[i]) * ROW - el.clientHeight / 3);
    } else if (follow) {
      el.scrollTop = el.scrollHeight;
    }
  }, [lines.length]);

  // A line's link followed within the page: scroll to it.
  useEffect(() => {
    const el = box.current;
    if (!el || target === null) return;
    const i = lines.findIndex((l, k) => l.offset <= target && (k + 1 === lines.length || lines[k + 1].offset > target));
    if (i >= 0) {
      el.scrollTop = Math.max(0, Math.max(0, rowOf[i]) * ROW - el.clientHeight / 3);
      setFollow(false);
    }
  }, [target]);

  const needle = search.toLowerCase();
  const matches = useMemo(
    () => (needle ? lines.reduce<number[]>((acc, l, i) => (l.text.toLowerCase().includes(needle) && acc.push(i), acc), []) : []),
    [needle, lines],
  );
  const [hit, setHit] = useState(0);
  const goto = (k: number) => {
    if (!matches.length || !box.current) return;
    const i = matches[((k % matches.length) + matches.length) % matches.length];
    setHit(k);
    box.current.scrollTop = Math.max(0, Math.max(0, rowOf[i]) * ROW - box.current.clientHeight / 2);
    setFollow(false);
  };

  const first = Math.max(0, Math.floor(top / ROW) - 20);
  const last = Math.min(rows.length, Math.ceil((top + height) / ROW) + 20);
  const visible = rows.slice(first, last);
  const writable = job && canWrite(me) && ['queued', 'pending', 'assigned', 'running'].includes(job.state);

  return (
    <Page
      title={<>{job ? job.name : `Job ${id}`} {job && <State state={job.state} />}</>}
      actions={
        <>
          {job && <a href={`/ui/pipelines/${job.pipeline_id}`}>pipeline #{job.pipeline_id}</a>}
          <a class="button" href={`/api/v1/jobs/${id}/log`} download={`job-${id}.log`}>Raw log</a>
          <a class="button" href={`/api/v1/jobs/${id}/log?timestamps=1`} target="_blank" rel="noopener">With timestamps</a>
          {writable && (
            <button class="danger" data-action="cancel-job" onClick={async () => {
              try {
                await api('POST', `/api/v1/jobs/${id}/cancel`);
                loadJob();
              } catch (e) {
                setError(e);
              }
            }}>Cancel</button>
          )}
        </>
      }
    >
      <ErrorBox error={error} />
      {job && (
        <p class="job-summary">
          {job.agent && <>on <b>{job.agent}</b> · </>}
          attempt {job.attempt}/{job.max_attempts} · {duration(job.started_at, job.finished_at)}
          {job.waiting && <span class="why" data-waiting> · waiting: {job.waiting}</span>}
          {job.message && <> · {job.message}</>}
        </p>
      )}
      <div class="log-tools">
        <input type="search" placeholder="search the loaded log" value={search} name="search"
          onInput={(e) => { setSearch((e.target as HTMLInputElement).value); setHit(0); }}
          onKeyDown={(e) => { if (e.key === 'Enter') goto(e.shiftKey ? hit - 1 : hit + 1); }} />
        {needle && <span class="hits">{matches.length ? `${(hit % matches.length + matches.length) % matches.length + 1} of ${matches.length}` : 'no match'}</span>}
        <span class="bytes">bytes {start}–{end} of {size}{start > 0 && ' (scroll up for earlier)'}</span>
        <label><input type="checkbox" checked={follow} onChange={(e) => setFollow((e.target as HTMLInputElement).checked)} /> follow</label>
      </div>
      <div class="log" ref={box} onScroll={onScroll} data-lines={lines.length}>
        <div style={{ height: `${rows.length * ROW}px`, position: 'relative' }}>
          <div style={{ transform: `translateY(${first * ROW}px)` }}>
            {visible.map((row) => {
              if ('step' in row) {
                const s = row.step;
                const open = !folded.has(s.index);
                return (
                  <div class="step-head" data-step={s.name} key={`step-${s.index}`}>
                    <button class="link" data-action="fold-step" onClick={() => {
                      const n = new Set(folded);
                      if (open) n.add(s.index);
                      else n.delete(s.index);
                      setFolded(n);
                    }}>{open ? '▾' : '▸'} {s.name}</button>
                    <span class="sub"> {row.lines} line{row.lines === 1 ? '' : 's'}</span>
                  </div>
                );
              }
              const l = row.line;
              const i = row.i;
              const isHit = needle && l.text.toLowerCase().includes(needle);
              return (
                <div class={`line${isHit ? ' hit' : ''}${target !== null && l.offset <= target && (i + 1 >= lines.length || lines[i + 1].offset > target) ? ' target' : ''}`} key={l.offset}>
                  <a class="ln" href={`#b${l.offset}`} title={`byte ${l.offset}`}>{l.offset}</a>
                  <span class="text">{parseAnsi(l.text).map((r) => (r.cls ? <span class={r.cls}>{r.text}</span> : r.text))}</span>
                </div>
              );
            })}
          </div>
        </div>
      </div>
    </Page>
  );
}
