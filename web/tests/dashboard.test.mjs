// The dashboard in a real browser (Debian's chromium through playwright-core) against a real
// server, database and agent, which tests/e2e/dashboard_test.cc starts before running this.
// Each check throws with what it expected; a screenshot of every page goes to OUT_DIR.
//
// Environment: BASE_URL, REPO_DIR (a git repository the server knows as REPO_NAME, cloned from
// CLONE_URL),
// WEBHOOK_SECRET, GO_FILE (a job waits for it), OUT_DIR, CHROMIUM (default /usr/bin/chromium);
// users alice (admin) and victor (viewer) with passwords pw-alice-123 and pw-victor-123; a
// server started with --deploy-hooks DIR, where DIR/ok exits 0 (the deployments' target runs it
// for every traffic change).
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env('BASE_URL');
const REPO_DIR = env('REPO_DIR');
const REPO_NAME = env('REPO_NAME');
const CLONE_URL = env('CLONE_URL');
const SECRET = env('WEBHOOK_SECRET');
const GO_FILE = env('GO_FILE');
const LLM_APP = env('LLM_APP'); // examples/llm-app: an eval with a gate
const OUT = env('OUT_DIR');
const WAIT = 60_000;
mkdirSync(OUT, { recursive: true });

let step = 0;
const log = (m) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`);
const t0 = Date.now();
async function shot(page, name) {
  step += 1;
  const file = `${OUT}/${String(step).padStart(2, '0')}-${name}.png`;
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
}

function git(...args) {
  return execFileSync('git', ['-C', REPO_DIR, ...args], { encoding: 'utf8' }).trim();
}

// Commits `files` and sends GitHub's signed push for it; the commit's SHA.
async function push(files, message, delivery) {
  for (const [name, text] of Object.entries(files)) writeFileSync(`${REPO_DIR}/${name}`, text);
  git('add', '-A');
  git('-c', 'user.name=Test', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', message);
  const sha = git('rev-parse', 'HEAD');
  const body = JSON.stringify({
    ref: 'refs/heads/main',
    before: '0'.repeat(40),
    after: sha,
    repository: { full_name: REPO_NAME, clone_url: CLONE_URL },
  });
  const sig = 'sha256=' + createHmac('sha256', SECRET).update(body).digest('hex');
  const r = await fetch(`${BASE}/hooks/github`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-GitHub-Event': 'push',
      'X-GitHub-Delivery': delivery,
      'X-Hub-Signature-256': sig,
    },
    body,
  });
  if (r.status !== 202 && r.status !== 200) throw new Error(`webhook: ${r.status} ${await r.text()}`);
  return sha;
}

// The REST API as the user signed in on `p` (its session cookie and CSRF token): {status, body}.
async function apiAs(p, method, path, body = null) {
  return p.evaluate(async ([method, path, body]) => {
    const csrf = (document.cookie.match(/assay_csrf=([0-9a-f]+)/) ?? [])[1] ?? '';
    const headers = { 'X-Assay-CSRF': csrf };
    if (body !== null) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers, body: body === null ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }, [method, path, body]);
}

function expectEqual(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}:\n  got  ${JSON.stringify(got)}\n  want ${JSON.stringify(want)}`);
  }
}

// Waits until deployment `id` is in state `want`; throws with its events if it ends (or pauses)
// in another state.
async function waitForDeployment(p, id, want) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const r = await apiAs(p, 'GET', `/api/v1/deployments/${id}`);
    if (r.status !== 200) throw new Error(`GET deployment ${id}: ${r.status} ${JSON.stringify(r.body)}`);
    if (r.body.state === want) return r.body;
    const stuck = ['paused', 'succeeded', 'rolled_back', 'aborted', 'superseded', 'failed'].includes(r.body.state);
    if (stuck || Date.now() > deadline) {
      const ev = await apiAs(p, 'GET', `/api/v1/deployments/${id}/events`);
      const lines = (ev.body?.events ?? []).map((e) => `${e.kind}: ${e.message}`).join('\n    ');
      throw new Error(`deployment ${id} is ${r.body.state} (${r.body.message}), not ${want}; its events:\n    ${lines}`);
    }
    await new Promise((done) => setTimeout(done, 200));
  }
}

async function login(context, user) {
  const page = await context.newPage();
  await page.goto(`${BASE}/ui/`);
  await page.waitForURL(/\/ui\/login/, { timeout: WAIT });
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', `pw-${user}-123`);
  await page.click('button[type=submit]');
  await page.waitForSelector(`[data-me="${user}"]`, { timeout: WAIT });
  return page;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox'],
});
try {
  const admin = await browser.newContext({ viewport: { width: 1280, height: 800 } });

  // A wrong password says so, and stays on the login page.
  {
    const page = await admin.newPage();
    await page.goto(`${BASE}/ui/login`);
    await page.fill('input[name=username]', 'alice');
    await page.fill('input[name=password]', 'not-her-password');
    await page.click('button[type=submit]');
    await page.waitForSelector('.error:has-text("wrong username or password")', { timeout: WAIT });
    await shot(page, 'login-refused');
    await page.close();
  }

  // Log in; the cookie is HttpOnly (the page's script cannot read the session).
  const page = await login(admin, 'alice');
  const cookies = await admin.cookies();
  const session = cookies.find((c) => c.name === 'assay_session');
  if (!session || !session.httpOnly || session.sameSite !== 'Strict') {
    throw new Error(`session cookie: ${JSON.stringify(session)}`);
  }
  if ((await page.evaluate(() => document.cookie)).includes('assay_session')) {
    throw new Error('the session cookie is readable by the page');
  }
  await shot(page, 'pipelines-empty');

  // Push; the pipeline appears and turns green with no reload (the page is never navigated).
  const loads = [];
  page.on('load', () => loads.push(Date.now()));
  await push({ '.assay.yml': 'jobs:\n  hello:\n    steps:\n      - run: echo hello from the dashboard test\n' },
    'first commit', 'delivery-1');
  const row = page.locator('tr[data-pipeline="1"]');
  await row.waitFor({ timeout: WAIT });
  await row.locator('[data-state="succeeded"]').waitFor({ timeout: WAIT });
  if (loads.length !== 0) throw new Error(`the page reloaded ${loads.length} times`);
  log('pipeline 1 appeared and succeeded without a reload');
  await shot(page, 'pipelines-green');

  // A pipeline with a job that prints while we watch, one to cancel and one that waits.
  await push({
    '.assay.yml': `jobs:
  build:
    steps:
      - run: |
          for i in $(seq 1 30); do printf '\\033[32mtick %d\\033[0m\\n' $i; sleep 0.05; done
          while [ ! -f ${GO_FILE} ]; do sleep 0.1; done
          echo all done
  long:
    steps:
      - run: sleep 600
  waits:
    runs_on:
      labels: [no-such-label]
    steps:
      - run: echo never
`,
  }, 'second commit', 'delivery-2');
  await page.locator('tr[data-pipeline="2"]').waitFor({ timeout: WAIT });
  await page.click('tr[data-pipeline="2"] a');
  await page.waitForURL(/\/ui\/pipelines\/2$/);
  await page.locator('[data-job="build"] [data-state="running"]').waitFor({ timeout: WAIT });
  await shot(page, 'pipeline-dag');

  // The live log while the job prints: ticks arrive, coloured; then the rest after GO_FILE.
  await page.click('[data-job="build"]');
  await page.waitForURL(/\/ui\/jobs\/\d+\/log$/);
  await page.locator('.log .line:has-text("tick 30")').waitFor({ timeout: WAIT });
  const green = await page.locator('.log .line .fg-2', { hasText: /^tick 7$/ }).count();
  if (green !== 1) throw new Error(`tick 7 is not green (${green} green runs)`);
  await shot(page, 'job-log-live');
  writeFileSync(GO_FILE, 'go');
  await page.locator('.log .line:has-text("all done")').waitFor({ timeout: WAIT });
  await page.locator('h1 [data-state="succeeded"]').waitFor({ timeout: WAIT });
  // Every line once, in order: what the first range and the live tail brought join exactly.
  await page.locator('.log[data-lines="31"]').waitFor({ timeout: WAIT });
  const texts = await page.locator('.log .line .text').allTextContents();
  const want = [...Array(30).keys()].map((i) => `tick ${i + 1}`).concat(['all done']);
  if (JSON.stringify(texts) !== JSON.stringify(want)) throw new Error(`the log reads ${JSON.stringify(texts)}`);
  // Search finds the line; the line's link is a URL that opens at it.
  await page.fill('input[name=search]', 'tick 12');
  await page.locator('.hits:has-text("1 of 1")').waitFor({ timeout: WAIT });
  const href = await page.locator('.log .line.hit .ln').getAttribute('href');
  await page.goto(`${BASE}${new URL(page.url()).pathname}${href}`);
  await page.locator('.log .line.target:has-text("tick 12")').waitFor({ timeout: WAIT });
  await shot(page, 'job-log-linked-line');

  // Cancel the long job from its pipeline page.
  await page.goto(`${BASE}/ui/pipelines/2`);
  await page.locator('tr[data-job-row="long"] [data-state="running"]').waitFor({ timeout: WAIT });
  await page.click('tr[data-job-row="long"] button[data-action="cancel-job"]');
  await page.locator('tr[data-job-row="long"] [data-state="canceled"]').waitFor({ timeout: WAIT });
  log('canceled the long job');
  // Retry it: the same row runs again (attempt 2), live; then cancel it again.
  await page.click('tr[data-job-row="long"] button[data-action="retry-job"]');
  await page.locator('tr[data-job-row="long"] [data-state="running"]').waitFor({ timeout: WAIT });
  log('retried the long job');
  await shot(page, 'pipeline-retried');
  // The agents page shows it among the agent's current jobs (1 slot of 1 in use).
  const longId = (await page.locator('tr[data-job-row="long"] a').getAttribute('href')).split('/')[3];
  await page.goto(`${BASE}/ui/agents`);
  await page.locator(`tr[data-agent="a1"] [data-slots-used="1"]`).waitFor({ timeout: WAIT });
  await page.locator(`tr[data-agent="a1"] a[href="/ui/jobs/${longId}/log"]`).waitFor({ timeout: WAIT });
  await shot(page, 'agents');
  await page.goto(`${BASE}/ui/pipelines/2`);
  await page.click('tr[data-job-row="long"] button[data-action="cancel-job"]');
  await page.locator('tr[data-job-row="long"] [data-state="canceled"]').waitFor({ timeout: WAIT });

  // Why a job waits: on the queue page, in words.
  await page.goto(`${BASE}/ui/queue`);
  const why = page.locator('tr[data-queued="waits"] .why');
  await why.waitFor({ timeout: WAIT });
  const text = await why.textContent();
  if (!text || !text.includes('no-such-label')) throw new Error(`why it waits: ${text}`);
  await shot(page, 'queue');
  await page.goto(`${BASE}/ui/settings`);
  await page.fill('input[name=token-name]', 'laptop');
  await page.click('text=Create token');
  await page.locator('[data-new-token]').waitFor({ timeout: WAIT });
  // The repository's webhook tools: a test delivery signed with its secret is accepted (a
  // ping), and the recent deliveries list it above the two pushes.
  const panel = page.locator(`[data-repo-panel="${REPO_NAME}"]`);
  await panel.locator('button[data-action="test-delivery"]').click();
  await panel.locator('[data-test-result="accepted"]:has-text("HTTP 200, accepted (pong)")').waitFor({ timeout: WAIT });
  await panel.locator('tr[data-delivery="3"]:has-text("ping")').waitFor({ timeout: WAIT });
  const pushes = await panel.locator('tr[data-delivery] a[href^="/ui/pipelines/"]').count();
  if (pushes !== 2) throw new Error(`the deliveries list ${pushes} pipelines, not 2`);
  // A secret is written, listed by name, and its value is never shown.
  await panel.locator('input[name=secret-name]').fill('API_KEY');
  await panel.locator('input[name=secret-value]').fill('sk-never-shown-123');
  await panel.locator('text=Set secret').click();
  await panel.locator('tr[data-secret="API_KEY"]').waitFor({ timeout: WAIT });
  if ((await page.content()).includes('sk-never-shown-123')) throw new Error('the secret value is in the page');
  await shot(page, 'settings');

  // Evals: push the LLM app twice (the second run has the first as its baseline); the evals
  // page lists them, and a run's page shows its metrics against the baseline and its gate.
  await page.goto(`${BASE}/ui/`);
  for (const [i, delivery] of [[1, 'delivery-3'], [2, 'delivery-4']]) {
    cpSync(LLM_APP, REPO_DIR, { recursive: true });
    await push({ 'RUN': `eval run ${i}\n` }, `llm app ${i}`, delivery);
    await page.locator(`tr[data-pipeline="${2 + i}"] [data-state="succeeded"]`).waitFor({ timeout: WAIT });
  }
  await page.goto(`${BASE}/ui/evals`);
  await page.locator('tr[data-eval] .state-succeeded').first().waitFor({ timeout: WAIT });
  if ((await page.locator('tr[data-eval]').count()) !== 2) throw new Error('the evals page does not list 2 runs');
  await shot(page, 'evals');
  await page.locator('tr[data-eval] a').first().click();
  await page.locator('tr[data-metric="exact_match"]').waitFor({ timeout: WAIT });
  // name | this run | [lo, hi] | the baseline's | change
  const cells = await page.locator('tr[data-metric="exact_match"] td').allTextContents();
  if (cells[0] !== 'exact_match' || !/^\d\.\d{3}$/.test(cells[1]) || !/^\[\d\.\d{3}, \d\.\d{3}\]$/.test(cells[2]) ||
      !/^\d\.\d{3}$/.test(cells[3])) {
    throw new Error(`exact_match row: ${JSON.stringify(cells)}`);
  }
  await page.locator('[data-verdict="exact_match"]').waitFor({ timeout: WAIT });
  await page.locator('.chart canvas').first().waitFor({ timeout: WAIT });
  await shot(page, 'eval-detail');

  // Models: a train step registers version 1 of `tiny` (a shell command stands in for a
  // trainer); the models page lists it, and its page shows the version and its loss curve.
  await push({
    '.assay.yml': `jobs:
  fit:
    steps:
      - name: prepare
        run: echo prepared
      - train:
          command: sh train.sh
          model: tiny
          params: {steps: 3}
  check:
    needs: [fit]
    steps:
      - eval:
          name: says-yes
          dataset: evals/yes.jsonl
          model: python3 echo_model.py
          metrics: [exact_match]
          gate:
            exact_match: { min: 0.5 }
`,
    'echo_model.py': `import json, sys
for line in sys.stdin:
    print(json.dumps({"id": json.loads(line)["id"], "output": "yes"}), flush=True)
`,
    'evals/yes.jsonl': '{"id": "a", "input": "say yes", "expected": "yes"}\n{"id": "b", "input": "yes?", "expected": "yes"}\n',
    'train.sh': `for i in 1 2 3; do echo "{\\"step\\": $i, \\"loss\\": 1.$((4 - i))}" >> "$ASSAY_METRICS_FILE"; done
echo weights > "$ASSAY_MODEL_DIR/model.bin"
`,
  }, 'train tiny', 'delivery-5');
  await page.goto(`${BASE}/ui/pipelines/5`);
  await page.locator('h1 [data-state="succeeded"]').waitFor({ timeout: WAIT });
  // Its log, folded by step: a header per step; folding "prepare" hides its line.
  await page.click('tr[data-job-row="fit"] a');
  await page.locator('.log .step-head[data-step="prepare"]').waitFor({ timeout: WAIT });
  if ((await page.locator('.log .step-head').count()) !== 2) throw new Error('the log has not 2 step headers');
  await page.locator('.log .line:has-text("prepared")').waitFor({ timeout: WAIT });
  await page.click('.log .step-head[data-step="prepare"] button');
  await page.locator('.log .line:has-text("prepared")').waitFor({ state: 'detached', timeout: WAIT });
  await shot(page, 'job-log-steps');
  await page.goto(`${BASE}/ui/models`);
  await page.locator('tr[data-model="tiny"]').waitFor({ timeout: WAIT });
  await shot(page, 'models');
  await page.click('tr[data-model="tiny"] a');
  await page.click('tr[data-version="1"] button');
  await page.locator('.chart canvas').first().waitFor({ timeout: WAIT });
  // Its eval scores: the run of the pipeline that registered it.
  await page.locator('[data-version-evals="1"] tr[data-eval-run]:has-text("says-yes"):has-text("passed")').waitFor({ timeout: WAIT });
  await shot(page, 'model-detail');

  // Re-run pipeline 1: a new pipeline (6) of the same commit, which says what it re-ran.
  await page.goto(`${BASE}/ui/pipelines/1`);
  await page.locator('dd:has-text("first commit")').waitFor({ timeout: WAIT });
  await page.click('button[data-action="rerun-pipeline"]');
  await page.waitForURL(/\/ui\/pipelines\/6$/, { timeout: WAIT });
  await page.locator('h1 [data-state="succeeded"]').waitFor({ timeout: WAIT });
  await page.locator('dd a[href="/ui/pipelines/1"]:has-text("#1")').waitFor({ timeout: WAIT });
  await shot(page, 'pipeline-rerun');

  // Deployments (issue 12). Environment "production" takes main only and needs no approval; its
  // target runs the hook `ok`, so every traffic change is done at once. Two image deployments,
  // one after the other, through the API as alice; then the pages, and a rollback from them.
  const repoId = (await apiAs(page, 'GET', '/api/v1/repos')).body.repos.find((r) => r.name === REPO_NAME).id;
  const target = { kind: 'command', command: ['ok'] };
  const envPut = await apiAs(page, 'PUT', `/api/v1/repos/${repoId}/environments/production`,
    { target, branches: ['main'], required_approvals: 0 });
  if (envPut.status !== 200) throw new Error(`PUT environment: ${envPut.status} ${JSON.stringify(envPut.body)}`);
  const IMAGES = ['1', '2'].map((c) => `registry.example.com/acme/app@sha256:${c.repeat(64)}`);
  const short = (image) => image.replace(/@sha256:(.{12}).*$/, '@sha256:$1…');
  const blueGreen = { blue_green: { auto_promote: true, scale_down_delay: '0s' } };
  const deployed = [];
  for (const [i, image] of IMAGES.entries()) {
    const r = await apiAs(page, 'POST', '/api/v1/deployments', {
      repo_id: repoId, environment: 'production', image, servers: [`127.0.0.1:${8101 + i}`], ref: 'main', strategy: blueGreen,
    });
    if (r.status !== 201 || r.body.state !== 'progressing') throw new Error(`POST deployment: ${r.status} ${JSON.stringify(r.body)}`);
    await waitForDeployment(page, r.body.id, 'succeeded');
    deployed.push(r.body.id);
  }
  const [d1, d2] = deployed;
  log(`deployments ${d1} and ${d2} succeeded`);

  // The environments page, from the navigation: what serves production now, and its protection.
  await page.goto(`${BASE}/ui/`);
  await page.click('nav.top a[href="/ui/environments"]');
  await page.waitForURL(/\/ui\/environments$/, { timeout: WAIT });
  const envRow = page.locator(`[data-repo="${REPO_NAME}"] tr[data-environment="production"]`);
  await envRow.waitFor({ timeout: WAIT });
  expectEqual(await envRow.locator('td').allTextContents(),
    ['production', `${short(IMAGES[1])} #${d2}`, '', 'main', '0', 'production', 'command ok'], 'the environments list');
  await shot(page, 'environments');

  // The environment's page: its history, newest first (the time columns aside).
  await envRow.locator('a', { hasText: 'production' }).click();
  await page.waitForURL(new RegExp(`/ui/repos/${repoId}/environments/production$`), { timeout: WAIT });
  const history = () => page.locator('table.deployments tbody tr').evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll('td:not(.time)')].map((td) => td.textContent)));
  const historyRow = (id, image, strategy, from, last) => [`#${id}`, 'succeeded', short(image), strategy, from, 'alice', 'promoted', last];
  await page.locator(`tr[data-deployment="${d1}"]`).waitFor({ timeout: WAIT });
  expectEqual(await history(), [
    historyRow(d2, IMAGES[1], 'blue_green', 'main', 'serving now'),
    historyRow(d1, IMAGES[0], 'blue_green', 'main', 'Roll back to this'),
  ], 'the history of production');
  expectEqual(await page.locator('[data-field="live"]').textContent(), `${short(IMAGES[1])} #${d2} on 127.0.0.1:8102`, 'what serves production');
  await shot(page, 'environment');

  // The first deployment's page: its fields, its events as a timeline, and no action (it is over).
  await page.click(`tr[data-deployment="${d1}"] a[href="/ui/deployments/${d1}"]`);
  await page.waitForURL(new RegExp(`/ui/deployments/${d1}$`), { timeout: WAIT });
  await page.locator('ol.timeline li[data-event-kind="succeeded"]').waitFor({ timeout: WAIT });
  const events = await page.locator('ol.timeline li').evaluateAll((lis) =>
    lis.map((li) => [li.dataset.eventKind, li.querySelector('.text').textContent]));
  expectEqual(events.map(([kind]) => kind), ['created', 'started', 'weight', 'weight', 'promoted', 'scaled_down', 'succeeded'],
    `the events of deployment ${d1} (${JSON.stringify(events)})`);
  // The messages the controller writes whatever the target (started and scaled_down name it).
  expectEqual(events.filter(([kind]) => !['started', 'scaled_down'].includes(kind)).map(([, text]) => text), [
    'created by alice',
    'step 1 of 2: 0% of traffic to the new version',
    'step 2 of 2: 100% of traffic to the new version',
    `promoted: the environment serves ${IMAGES[0]}`,
    'done',
  ], `the event messages of deployment ${d1}`);
  const field = async (name) => (await page.locator(`[data-field="${name}"]`).textContent()).trim();
  expectEqual([await field('version'), await field('step'), await field('weight'), await field('created-by'), await field('origin'), await field('message')],
    [IMAGES[0], '2 of 2 steps done', '100% to the new version', 'alice', 'main', 'promoted'], `deployment ${d1}'s fields`);
  await page.locator('h1 [data-state="succeeded"]').waitFor({ timeout: WAIT });
  if ((await page.locator('button[data-action]').count()) !== 0) throw new Error('a succeeded deployment offers actions');
  await shot(page, 'deployment');

  // Roll back to the first deployment: a confirmation first (nothing is made yet), then a new
  // deployment of its image to its server, which succeeds and serves production.
  await page.click(`[data-field="environment"] a`);
  await page.waitForURL(new RegExp(`/ui/repos/${repoId}/environments/production$`), { timeout: WAIT });
  await page.click(`tr[data-deployment="${d1}"] button[data-action="rollback"]`);
  const confirmBox = page.locator(`[data-confirm-rollback="${d1}"]`);
  await confirmBox.waitFor({ timeout: WAIT });
  expectEqual(await confirmBox.locator('span').first().textContent(),
    `Roll back production to #${d1}? A new deployment sends all traffic at once to ${short(IMAGES[0])} on 127.0.0.1:8101; ` +
    "those servers must still be running. The environment's branches and approvals apply.", 'the rollback confirmation');
  const listed = await apiAs(page, 'GET', `/api/v1/deployments?repo=${repoId}&environment=production`);
  expectEqual(listed.body.deployments.map((d) => d.id), [d2, d1], 'deployments before the rollback is confirmed');
  await shot(page, 'rollback-confirm');
  await confirmBox.locator('button[data-action="confirm-rollback"]').click();
  const made = page.locator('[data-rollback-made]');
  await made.waitFor({ timeout: WAIT });
  const d3 = Number(await made.getAttribute('data-rollback-made'));
  expectEqual(await made.textContent(), `Deployment #${d3} brings back the version of #${d1}.`, 'the rollback note');
  await page.locator(`tr[data-deployment="${d3}"] [data-state="succeeded"]`).waitFor({ timeout: WAIT });
  await page.locator('[data-field="active"]:text-is("nothing")').waitFor({ timeout: WAIT });
  expectEqual(await history(), [
    historyRow(d3, IMAGES[0], 'canary', `main · rollback to #${d1}`, 'serving now'),
    historyRow(d2, IMAGES[1], 'blue_green', 'main', 'Roll back to this'),
    historyRow(d1, IMAGES[0], 'blue_green', 'main', 'Roll back to this'),
  ], 'the history of production after the rollback');
  expectEqual(await page.locator('[data-field="live"]').textContent(), `${short(IMAGES[0])} #${d3} on 127.0.0.1:8101`, 'what serves production after the rollback');
  await shot(page, 'environment-rolled-back');

  // A deployment that waits for one approval offers Approve and Abort only; its creator's
  // approval is refused, in the API's words.
  const stagingPut = await apiAs(page, 'PUT', `/api/v1/repos/${repoId}/environments/staging`, { target, required_approvals: 1 });
  if (stagingPut.status !== 200) throw new Error(`PUT staging: ${stagingPut.status} ${JSON.stringify(stagingPut.body)}`);
  const pending = await apiAs(page, 'POST', '/api/v1/deployments', {
    repo_id: repoId, environment: 'staging', image: IMAGES[1], servers: ['127.0.0.1:8103'], ref: 'main', strategy: blueGreen,
  });
  if (pending.status !== 201 || pending.body.state !== 'pending_approval') {
    throw new Error(`POST staging deployment: ${pending.status} ${JSON.stringify(pending.body)}`);
  }
  const d4 = pending.body.id;
  await page.goto(`${BASE}/ui/deployments/${d4}`);
  await page.locator('h1 [data-state="pending_approval"]').waitFor({ timeout: WAIT });
  expectEqual(await page.locator('button[data-action]').evaluateAll((bs) => bs.map((b) => b.dataset.action)),
    ['approve', 'abort'], 'the actions of a deployment waiting for approval');
  await page.locator('[data-field="approvals"]:text-is("0 of 1")').waitFor({ timeout: WAIT });
  await page.click('button[data-action="approve"]');
  await page.locator('.error').waitFor({ timeout: WAIT });
  expectEqual(await page.locator('.error').allTextContents(),
    [`deployment ${d4} was asked for by alice, who cannot approve it too`], 'the refused approval');
  await page.locator('h1 [data-state="pending_approval"]').waitFor({ timeout: WAIT });
  await shot(page, 'deployment-approve-refused');

  // A viewer: no cancel button, and the API refuses (403) even when asked directly.
  const viewer = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const vpage = await login(viewer, 'victor');
  await vpage.goto(`${BASE}/ui/pipelines/2`);
  await vpage.locator('tr[data-job-row="waits"]').waitFor({ timeout: WAIT });
  if ((await vpage.locator('button[data-action]').count()) !== 0) {
    throw new Error('a viewer sees a cancel or retry button');
  }
  const status = await vpage.evaluate(async () => {
    const csrf = document.cookie.match(/assay_csrf=([0-9a-f]+)/)[1];
    const r = await fetch('/api/v1/pipelines/2/cancel', { method: 'POST', headers: { 'X-Assay-CSRF': csrf } });
    return r.status;
  });
  if (status !== 403) throw new Error(`a viewer's cancel answered ${status}`);
  await shot(vpage, 'viewer-pipeline');
  // Environments and deployments: shown, with no rollback, approve or abort; the API refuses.
  await vpage.goto(`${BASE}/ui/repos/${repoId}/environments/production`);
  await vpage.locator(`tr[data-deployment="${d1}"]`).waitFor({ timeout: WAIT });
  await vpage.locator(`tr[data-deployment="${d3}"] [data-state="succeeded"]`).waitFor({ timeout: WAIT });
  if ((await vpage.locator('button[data-action]').count()) !== 0) throw new Error('a viewer sees a rollback button');
  await vpage.goto(`${BASE}/ui/deployments/${d4}`);
  await vpage.locator('h1 [data-state="pending_approval"]').waitFor({ timeout: WAIT });
  await vpage.locator('ol.timeline li[data-event-kind="created"]').waitFor({ timeout: WAIT });
  if ((await vpage.locator('button[data-action], input[name=reason]').count()) !== 0) {
    throw new Error('a viewer sees an approve or abort button');
  }
  const rollbackAsViewer = await apiAs(vpage, 'POST', `/api/v1/repos/${repoId}/environments/production/rollback`, { to: d2 });
  if (rollbackAsViewer.status !== 403) throw new Error(`a viewer's rollback answered ${rollbackAsViewer.status}`);
  await shot(vpage, 'viewer-deployment');
  // An unknown page says so.
  await vpage.goto(`${BASE}/ui/no-such-page`);
  await vpage.locator('h1:has-text("Not found")').waitFor({ timeout: WAIT });
  log('all dashboard checks passed');
} finally {
  await browser.close();
}
