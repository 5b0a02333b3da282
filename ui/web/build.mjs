// Builds ../static from src/ and node_modules: one script bundle, one
// stylesheet (uPlot's CSS + ours), the head script and the icon. The output
// is deterministic so CI can rebuild and compare it with the committed one.
import * as esbuild from 'esbuild';
import { readFileSync, writeFileSync, mkdirSync, rmSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || join(here, '..', 'static');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const common = { bundle: true, minify: true, target: ['es2020'], legalComments: 'eof', logLevel: 'warning' };
await esbuild.build({ ...common, entryPoints: [join(here, 'src/main.js')], format: 'iife', outfile: join(out, 'app.js') });
await esbuild.build({ ...common, entryPoints: [join(here, 'src/theme.js')], format: 'iife', outfile: join(out, 'theme.js') });
const css = readFileSync(join(here, 'node_modules/uplot/dist/uPlot.min.css'), 'utf8') + '\n' + readFileSync(join(here, 'src/app.css'), 'utf8');
const min = await esbuild.transform(css, { loader: 'css', minify: true });
writeFileSync(join(out, 'app.css'), min.code);
writeFileSync(join(out, 'favicon.svg'), readFileSync(join(here, 'src/favicon.svg')));
writeFileSync(join(out, 'LICENSE-uPlot.txt'), readFileSync(join(here, 'node_modules/uplot/LICENSE')));

// build.sum lets `go test ./ui` notice a stale build without node: it
// holds the SHA-256 of the inputs and of the outputs, computed the same way
// as ui/build_test.go does.
const sumDir = (dir) => {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) {
    h.update(f + '\n');
    h.update(readFileSync(join(dir, f)));
  }
  return h.digest('hex');
};
const sumFiles = (files) => {
  const h = createHash('sha256');
  for (const f of files) {
    h.update(f + '\n');
    h.update(readFileSync(join(here, f)));
  }
  return h.digest('hex');
};
if (!process.argv[2]) {
  const inputs = ['build.mjs', 'package-lock.json', ...readdirSync(join(here, 'src')).sort().map((f) => 'src/' + f)];
  writeFileSync(join(here, 'build.sum'), `inputs ${sumFiles(inputs)}\noutputs ${sumDir(out)}\n`);
}
