// Shared helpers: API access, formatting, escaping.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ESC[c]);

// showError puts a message in the page's error strip; the API's error
// body ({code, message}) says what was wrong, so it is shown as is.
export function showError(msg) {
  const box = document.getElementById('errors');
  if (!box) return;
  box.hidden = false;
  const p = document.createElement('p');
  p.textContent = msg;
  box.appendChild(p);
}

export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api GETs a JSON document from the collector. Errors carry the status
// so a page can treat 404 ("not found") differently from a failure.
export async function api(path, opts = {}) {
  const res = await fetch(path, { headers: { Accept: 'application/json' }, signal: opts.signal });
  let body = null;
  try {
    body = await res.json();
  } catch (e) {
    if (res.ok) throw new APIError(res.status, 'bad_json', `${path}: the server sent something other than JSON`);
  }
  if (!res.ok) {
    const msg = body && body.message ? body.message : res.statusText;
    throw new APIError(res.status, body && body.code, `${path}: ${res.status} ${msg}`);
  }
  return body;
}

export const enc = encodeURIComponent;
export const instPath = (svc, id) => `/instance/${enc(svc)}/${enc(id)}`;
export const apiInst = (svc, id) => `/api/v1/instances/${enc(svc)}/${enc(id)}`;

export function fmtBytes(b) {
  if (b == null || !isFinite(b)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Math.abs(b);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (b < 0 ? '-' : '') + (v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)) + ' ' + u[i];
}

export function fmtNum(n) {
  if (n == null || !isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (n / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return (n / 1e3).toFixed(1) + 'k';
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(a >= 10 ? 1 : 2);
}

// fmtSec formats seconds with a unit that keeps 2–3 significant digits.
export function fmtSec(s) {
  if (s == null || !isFinite(s)) return '–';
  const a = Math.abs(s);
  if (a === 0) return '0';
  if (a < 1e-6) return (s * 1e9).toFixed(0) + ' ns';
  if (a < 1e-3) return (s * 1e6).toFixed(a < 1e-5 ? 1 : 0) + ' µs';
  if (a < 1) return (s * 1e3).toFixed(a < 1e-2 ? 2 : 1) + ' ms';
  if (a < 120) return s.toFixed(1) + ' s';
  if (a < 7200) return (s / 60).toFixed(0) + ' min';
  if (a < 172800) return (s / 3600).toFixed(1) + ' h';
  return (s / 86400).toFixed(1) + ' d';
}

export const fmtMs = (ms) => (ms == null || ms < 0 || !isFinite(ms) ? '–' : fmtSec(ms / 1e3));
export const fmtPct = (f, digits = 1) => (f == null || f < 0 || !isFinite(f) ? '–' : (100 * f).toFixed(digits) + '%');

export function ago(t) {
  const ms = typeof t === 'number' ? t : Date.parse(t);
  if (!isFinite(ms)) return '–';
  const s = (Date.now() - ms) / 1000;
  if (s < 5) return 'just now';
  return fmtSec(s).replace(/\.0 /, ' ') + ' ago';
}

export function fmtTime(t) {
  const d = new Date(typeof t === 'number' ? t : Date.parse(t));
  if (isNaN(d)) return '–';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// A runtime/metrics limit of MaxInt64 means "none".
export const isLimit = (v) => v != null && v > 0 && v < 4e18;

export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// frameText renders one stack frame as "func\n  file:line".
export function frameHTML(f, cls = '') {
  if (!f || !f.func) return '<span class="muted">unknown</span>';
  const loc = f.file ? `${esc(shortFile(f.file))}:${f.line || '?'}` : '';
  return `<div class="frame ${cls}"><span class="fn">${esc(f.func)}</span>${loc ? `<span class="loc" title="${esc(f.file)}:${f.line}">${loc}</span>` : ''}</div>`;
}

export function shortFile(f) {
  const parts = String(f).split('/');
  return parts.length > 3 ? '…/' + parts.slice(-3).join('/') : f;
}

export function kindLabel(k) {
  return { 'goroutine-leak': 'goroutine leak', 'gc-pause': 'GC pauses', 'gc-cpu': 'GC CPU', 'heap-limit': 'heap near limit', 'gc-advice': 'GC tuning' }[k] || k;
}

// adviceHTML lists analyze/gc's advice items (GET …/gc "advice", or a GC
// finding's details): what to change, with the model's predicted cost.
export function adviceHTML(items, summary) {
  if (!items || !items.length) return '<p class="muted">No advice.</p>';
  const label = { tune: 'change', warning: 'warning', info: 'note', refused: 'no advice' };
  const pred = (a) => {
    const p = [];
    if (a.gogc != null) p.push(`GOGC=${a.gogc}`);
    if (a.gomemlimit_bytes != null) p.push(`GOMEMLIMIT=${Math.round(a.gomemlimit_bytes / 1048576)}MiB`);
    const out = [];
    if (a.gc_cpu_fraction != null) out.push(`GC CPU ~${fmtPct(a.gc_cpu_fraction)}`);
    if (a.peak_heap_bytes != null) out.push(`peak heap ~${fmtBytes(a.peak_heap_bytes)}`);
    return p.length ? `<div class="small"><code>${esc(p.join(' '))}</code>${out.length ? ' → ' + esc(out.join(', ')) : ''}</div>` : '';
  };
  const now = summary ? `<p class="muted small">Over ${fmtSec(summary.window_seconds)}: ${summary.cycles} cycles, GC CPU ${fmtPct(summary.gc_cpu_fraction)} of capacity (assist ${fmtPct(summary.assist_fraction)}), live heap ${fmtBytes(summary.live_heap_bytes)}, goal ${fmtBytes(summary.heap_goal_bytes)}, GOGC ${summary.gogc < 0 ? 'off' : summary.gogc || '?'}.</p>` : '';
  return now + `<ul class="gc-advice">${items.map((a) => `<li class="adv-${esc(a.kind)}"><span class="badge">${esc(label[a.kind] || a.kind)}</span> ${esc(a.text)}${pred(a)}</li>`).join('')}</ul>`;
}

// Runs fn over items with at most n in flight.
export async function pool(items, n, fn) {
  let i = 0;
  const worker = async () => {
    while (i < items.length) {
      const it = items[i++];
      try { await fn(it); } catch (e) { /* each item reports its own failure */ }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

export function sparkline(values, w = 120, h = 24) {
  const v = values.filter((x) => x != null && isFinite(x));
  if (v.length < 2) return '<span class="muted small">no data</span>';
  let lo = Math.min(...v), hi = Math.max(...v);
  if (hi === lo) { hi += 1; lo -= 1; }
  const pts = v.map((x, i) => `${(i * (w - 2) / (v.length - 1) + 1).toFixed(1)},${(h - 2 - (x - lo) / (hi - lo) * (h - 4)).toFixed(1)}`).join(' ');
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="goroutines from ${lo} to ${hi}"><polyline points="${pts}" /></svg>`;
}
