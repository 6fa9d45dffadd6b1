// Opens a job's log page in Chromium and measures it (bench/dashboard_bench.cc runs this):
// the time from navigation to the first log lines drawn, then the longest main-thread task
// while the reader scrolls up through earlier pages (PerformanceObserver 'longtask': every
// task over 50 ms is reported with its duration). Env: BASE_URL, JOB, COOKIE (name=value).
import { chromium } from 'playwright-core';

const BASE = process.env.BASE_URL;
const JOB = process.env.JOB;
const [name, value] = process.env.COOKIE.split('=');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addCookies([{ name, value, url: BASE }]);
  await context.addInitScript(() => {
    // The moment the first log line is in the document, seen by the page itself (not by the
    // test's polling).
    window.__firstLine = 0;
    new MutationObserver((_, obs) => {
      if (!window.__firstLine && document.querySelector('.log .line')) {
        window.__firstLine = performance.now();
        obs.disconnect();
      }
    }).observe(document, { childList: true, subtree: true });
    window.__long = [];
    new PerformanceObserver((l) => l.getEntries().forEach((e) => window.__long.push(e.duration)))
      .observe({ type: 'longtask', buffered: true });
  });
  const page = await context.newPage();
  // What each load waited for: every request's time, start to last byte (the last load's).
  let requests = [];
  page.on('requestfinished', (r) => {
    const t = r.timing();
    requests.push(`${r.method()} ${new URL(r.url()).pathname}${r.headers().range ? ' ' + r.headers().range : ''}: ${(t.responseEnd).toFixed(0)} ms`);
  });
  const runs = [];
  for (let i = 0; i < 5; i++) {
    requests = [];
    await page.goto(`${BASE}/ui/jobs/${JOB}/log`);
    await page.locator('.log .line').first().waitFor({ timeout: 30000 });
    runs.push(await page.evaluate(() => window.__firstLine));
  }
  console.log(`requests of the last load:\n  ${requests.join('\n  ')}`);
  runs.sort((a, b) => a - b);
  console.log(`open: first lines drawn ${runs.map((r) => r.toFixed(0)).join(', ')} ms after navigation (5 loads; median ${runs[2].toFixed(0)} ms)`);
  const loadLong = await page.evaluate(() => Math.max(0, ...window.__long));
  await page.evaluate(() => { window.__long = []; });
  // Scroll to the top 40 times: each loads one earlier 256 KiB page.
  let pages = 0;
  for (let i = 0; i < 40; i++) {
    const before = Number(await page.locator('.log').getAttribute('data-lines'));
    await page.locator('.log').evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    try {
      await page.waitForFunction((n) => Number(document.querySelector('.log').dataset.lines) > n, before, { timeout: 5000 });
      pages++;
    } catch {
      break;
    }
    // And read through the middle of what is loaded, a screen at a time.
    for (let k = 0; k < 5; k++) await page.mouse.wheel(0, 900);
  }
  const long = await page.evaluate(() => window.__long);
  const lines = await page.locator('.log').getAttribute('data-lines');
  console.log(`scroll: ${pages} earlier pages loaded, ${lines} lines in the window; long tasks: ${long.length}, longest ${long.length ? Math.max(...long).toFixed(0) : 0} ms (at load: ${loadLong.toFixed(0)} ms)`);
} finally {
  await browser.close();
}
