// Bundles the dashboard into dist/: index.html, and assets/app-HASH.js and .css with a
// gzipped copy of each (the server sends those to clients that accept gzip). Prints each
// file's size and fails when the first load's compressed JavaScript and CSS pass the budget
// (issue 11: 150 KB).
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const BUDGET = 150 * 1024;
const out = new URL('./dist/', import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out + 'assets', { recursive: true });

const result = await build({
  entryPoints: ['src/main.tsx'],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  write: false,
  outdir: 'out',
  legalComments: 'none',
  logLevel: 'warning',
});

const names = {};
let compressed = 0;
for (const f of result.outputFiles) {
  const ext = f.path.endsWith('.css') ? 'css' : 'js';
  const hash = createHash('sha256').update(f.contents).digest('hex').slice(0, 12);
  const name = `app-${hash}.${ext}`;
  names[ext] = name;
  writeFileSync(out + 'assets/' + name, f.contents);
  const gz = gzipSync(f.contents, { level: 9 });
  writeFileSync(out + 'assets/' + name + '.gz', gz);
  compressed += gz.length;
  console.log(`${name}: ${f.contents.length} bytes, ${gz.length} gzipped`);
}
const html = readFileSync('src/index.html', 'utf8')
  .replace('%APP_JS%', '/assets/' + names.js)
  .replace('%APP_CSS%', names.css ? `<link rel="stylesheet" href="/assets/${names.css}">` : '');
writeFileSync(out + 'index.html', html);
console.log(`first load: ${compressed} bytes of compressed JavaScript and CSS (budget ${BUDGET})`);
if (compressed > BUDGET) {
  console.error(`over the budget of ${BUDGET} bytes`);
  process.exit(1);
}
