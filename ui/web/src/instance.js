// The instance page: linked charts over a chosen range, markers for
// evidence bundles and long GC pauses, GC health and findings.
import { $, $$, api, esc, enc, apiInst, fmtBytes, fmtNum, fmtPct, fmtMs, fmtSec, fmtTime, ago, isLimit, showError, adviceHTML } from './util.js';
import { ChartGroup, lineChart, heatmapChart, emptyChart, PALETTE } from './charts.js';
import { findingHTML } from './fleet.js';

// Steps keep every chart near 200–400 points whatever the range; from 6 h
// on they are whole minutes so the API can answer from rollups.
const RANGES = { '15m': [15 * 60e3, 5e3], '1h': [3600e3, 15e3], '6h': [6 * 3600e3, 60e3], '24h': [24 * 3600e3, 4 * 60e3], '168h': [7 * 86400e3, 30 * 60e3] };
const LONG_PAUSE_NS = 10e6;

// Display rows of the pause heatmap (seconds): finer than decades, coarser
// than the runtime's buckets.
const PAUSE_ROWS = [0, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1];

export async function instancePage() {
  const app = $('#app');
  const svc = app.dataset.service, id = app.dataset.instance;
  const base = apiInst(svc, id);
  const info = await api(base);
  const inst = info.instance;
  const names = new Set(info.series);
  $('#inst-meta').innerHTML = [
    inst.source === 'agent' ? `agent ${esc(inst.agent_version || '')}` : esc(inst.source),
    inst.host ? `host ${esc(inst.host)}` : '', inst.pid ? `pid ${inst.pid}` : '', inst.go_version ? esc(inst.go_version) : '',
    inst.start_time ? `started ${esc(ago(inst.start_time))}` : '', `last seen ${esc(ago(inst.last_seen))}`,
  ].filter(Boolean).join(' · ');

  const group = new ChartGroup('inst');
  let current = null;
  const choose = async (rk) => {
    $$('.ranges button').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.range === rk)));
    const u = new URL(location.href);
    u.searchParams.set('range', rk);
    history.replaceState(null, '', u);
    current = rk;
    const t0 = performance.now();
    try {
      await draw(base, svc, id, names, rk, group);
    } catch (e) {
      showError(e.message);
    }
    if (current === rk) document.body.dataset.rendered = String(Math.round(performance.now() - t0));
  };
  $$('.ranges button').forEach((b) => b.addEventListener('click', () => choose(b.dataset.range)));
  window.addEventListener('themechange', () => current && choose(current));
  let resizeT = null;
  window.addEventListener('resize', () => { clearTimeout(resizeT); resizeT = setTimeout(() => current && choose(current), 250); });
  const q = new URL(location.href).searchParams.get('range');
  // A young instance has little to show over an hour: start closer.
  const young = Date.now() - Date.parse(inst.first_seen) < 30 * 60e3;
  await choose(RANGES[q] ? q : young ? '15m' : '1h');
}

async function series(base, name, start, end, step) {
  const r = await api(`${base}/series?name=${enc(name)}&start=${start}&end=${end}&step=${step}ms`);
  return r.points;
}

async function draw(base, svc, id, names, rk, group) {
  const [span, step] = RANGES[rk];
  const end = Date.now();
  const start = end - span;
  const has = (n) => names.has(n);
  const want = [
    '/sched/pauses/total/gc:seconds', '/cpu/classes/gc/total:cpu-seconds', '/cpu/classes/total:cpu-seconds', '/cpu/classes/gc/mark/idle:cpu-seconds',
    '/memstats/gc-cpu-fraction:fraction', '/gc/heap/live:bytes', '/gc/heap/goal:bytes', '/gc/gomemlimit:bytes', '/cgroup/memory/limit:bytes',
    '/memstats/heap-alloc:bytes', '/sched/goroutines:goroutines', '/sched/goroutines/running:goroutines', '/sched/goroutines/runnable:goroutines',
    '/sched/goroutines/waiting:goroutines', '/sched/latencies:seconds', '/process/rss:bytes', '/cgroup/memory/working-set:bytes',
  ].filter(has);
  // GC cycles can number tens of thousands over days; pause markers are
  // drawn from them only up to 6 h.
  const [pts, gc, bundles, findings] = await Promise.all([
    Promise.all(want.map((n) => series(base, n, start, end, step).then((p) => [n, p]))).then((a) => new Map(a)),
    api(`${base}/gc?start=${span <= 6 * 3600e3 ? start : end - 5 * 60e3}&end=${end}`),
    api(`/api/v1/bundles?service=${enc(svc)}&instance=${enc(id)}&since=${start}&limit=200`),
    api(`/api/v1/findings?service=${enc(svc)}&instance=${enc(id)}&limit=50`),
  ]);
  const P = (n) => pts.get(n) || [];
  const v = (n) => P(n).map((p) => [p.t, p.value]);

  renderHealth(gc.health);
  $('#gc-advice').innerHTML = gc.advice ? adviceHTML(gc.advice.advice, gc.advice.summary) : '<p class="muted">This server computes no GC advice.</p>';
  $('#inst-findings').innerHTML = findings.findings.filter((f) => f.state === 'open').map(findingHTML).join('');
  renderBundles(bundles.bundles);

  group.destroy();
  // Scheduled scrapes are not events: only triggered bundles get a marker.
  group.markers = bundles.bundles.filter((b) => b.rule !== 'scrape').map((b) => ({ t: Date.parse(b.fired_at) / 1000, kind: 'bundle', label: `${b.rule}: ${b.reason || ''}`, href: `/bundle/${enc(b.id)}` }));
  if (span <= 6 * 3600e3) {
    for (const c of gc.cycles) {
      if (c.pause_ns < LONG_PAUSE_NS) continue;
      const t = c.end_time / 1000;
      const near = group.markers.find((m) => m.kind === 'bundle' && Math.abs(m.t - t) < 60);
      group.markers.push({ t, kind: 'pause', label: `GC ${c.cycle}: pause ${fmtMs(c.pause_ns / 1e6)}`, href: near ? near.href : null });
    }
  }
  const box = $('#charts');
  box.innerHTML = '<div id="markers" class="markers" aria-label="Markers"></div>';
  const width = Math.max(320, box.clientWidth);
  const cw = width >= 1400 ? Math.floor((width - 16) / 2) : width;
  const add = (title) => {
    const el = document.createElement('div');
    el.className = 'chart';
    el.dataset.title = title;
    box.appendChild(el);
    return el;
  };

  // GC pause heatmap from the cumulative pause histogram.
  const hp = P('/sched/pauses/total/gc:seconds');
  const hm = heatCells(hp, step);
  if (hm) heatmapChart(add('GC pauses'), group, { title: 'GC stop-the-world pauses (count per bucket)', cells: hm, width: cw });
  else emptyChart(add('GC pauses'), 'GC stop-the-world pauses', has('/sched/pauses/total/gc:seconds') ? 'No GC pause in this range.' : 'The pause histogram comes from the gopulse agent (runtime/metrics); scraped instances do not report it.');

  // GC CPU share.
  let gcs = [];
  let label = 'GC CPU of capacity (GOMAXPROCS × time, idle marking out)';
  if (has('/cpu/classes/gc/total:cpu-seconds')) {
    gcs = gcFraction(v('/cpu/classes/gc/total:cpu-seconds'), v('/cpu/classes/gc/mark/idle:cpu-seconds'), v('/cpu/classes/total:cpu-seconds'));
  } else if (has('/memstats/gc-cpu-fraction:fraction')) {
    gcs = v('/memstats/gc-cpu-fraction:fraction');
    label = 'GC CPU fraction since process start (memstats)';
  }
  if (gcs.length) lineChart(add('GC CPU'), group, { title: 'GC CPU share', series: [{ label, pts: gcs, fill: 'rgba(245,158,11,0.15)', color: PALETTE[1] }], yfmt: (x) => fmtPct(x, 0), width: cw });
  else emptyChart(add('GC CPU'), 'GC CPU share', 'No CPU class data in this range.');

  // Heap.
  const heapSeries = [];
  if (has('/gc/heap/live:bytes')) heapSeries.push({ label: 'live heap', pts: v('/gc/heap/live:bytes'), color: PALETTE[0], fill: 'rgba(59,130,246,0.12)' });
  if (has('/memstats/heap-alloc:bytes')) heapSeries.push({ label: 'heap alloc', pts: v('/memstats/heap-alloc:bytes'), color: PALETTE[0], fill: 'rgba(59,130,246,0.12)' });
  if (has('/gc/heap/goal:bytes')) heapSeries.push({ label: 'heap goal', pts: v('/gc/heap/goal:bytes'), color: PALETTE[2] });
  const ml = v('/gc/gomemlimit:bytes').filter((p) => isLimit(p[1]));
  if (ml.length) heapSeries.push({ label: 'GOMEMLIMIT', pts: ml, color: PALETTE[3], dash: [6, 4] });
  const cg = v('/cgroup/memory/limit:bytes').filter((p) => isLimit(p[1]));
  if (cg.length) heapSeries.push({ label: 'cgroup limit', pts: cg, color: PALETTE[4], dash: [2, 3] });
  if (heapSeries.length) lineChart(add('Heap'), group, { title: 'Heap: live / goal / limits', series: heapSeries, yfmt: fmtBytes, width: cw });
  else emptyChart(add('Heap'), 'Heap', 'No heap data in this range.');

  // Goroutines.
  const gs = [{ label: 'goroutines', pts: v('/sched/goroutines:goroutines'), color: PALETTE[0], width: 2 }];
  ['running', 'runnable', 'waiting'].forEach((s, i) => {
    const n = `/sched/goroutines/${s}:goroutines`;
    if (has(n)) gs.push({ label: s, pts: v(n), color: PALETTE[i + 1] });
  });
  if (gs[0].pts.length) lineChart(add('Goroutines'), group, { title: 'Goroutines', series: gs, yfmt: fmtNum, width: cw });
  else emptyChart(add('Goroutines'), 'Goroutines', 'No goroutine count in this range.');

  // Scheduler latency p99 per bucket from the cumulative histogram.
  const sl = histQuantile(P('/sched/latencies:seconds'), 0.99);
  if (sl.length) lineChart(add('Sched latency'), group, { title: 'Scheduler latency p99 (runnable → running)', series: [{ label: 'p99', pts: sl, color: PALETTE[4] }], yfmt: fmtSec, width: cw });
  else emptyChart(add('Sched latency'), 'Scheduler latency p99', has('/sched/latencies:seconds') ? 'No change in this range.' : 'Reported by the gopulse agent only.');

  // RSS vs container limit.
  const rs = [];
  if (has('/process/rss:bytes')) rs.push({ label: 'RSS', pts: v('/process/rss:bytes'), color: PALETTE[0], fill: 'rgba(59,130,246,0.10)' });
  if (has('/cgroup/memory/working-set:bytes')) rs.push({ label: 'cgroup working set', pts: v('/cgroup/memory/working-set:bytes'), color: PALETTE[2] });
  if (cg.length) rs.push({ label: 'container limit', pts: cg, color: PALETTE[3], dash: [6, 4] });
  if (rs.length) lineChart(add('RSS'), group, { title: 'Resident memory vs container limit', series: rs, yfmt: fmtBytes, width: cw });
  else emptyChart(add('RSS'), 'Resident memory', 'RSS is reported by the gopulse agent only.');

  for (const u of group.charts) u.setScale('x', { min: start / 1000, max: end / 1000 });
  placeMarkers(group);
  group.onScale = () => placeMarkers(group);
  document.body.dataset.points = String(group.charts.reduce((n, u) => n + u.data[0].length, 0));
}

// heatCells turns stepped cumulative histograms into per-bucket counts
// folded into PAUSE_ROWS.
function heatCells(pts, step) {
  const withH = pts.filter((p) => p.hist);
  if (withH.length < 2) return null;
  const rowOf = (lo, hi) => {
    const mid = lo === '-Inf' || lo <= 0 ? hi / 2 : hi === '+Inf' ? lo * 1.5 : Math.sqrt(lo * hi);
    let r = 0;
    while (r < PAUSE_ROWS.length - 2 && mid >= PAUSE_ROWS[r + 1]) r++;
    return r;
  };
  const x = [], counts = [];
  let any = false;
  for (let i = 1; i < withH.length; i++) {
    const a = withH[i - 1].hist, b = withH[i].hist;
    if (a.counts.length !== b.counts.length) continue;
    const col = new Array(PAUSE_ROWS.length - 1).fill(0);
    for (let j = 0; j < b.counts.length; j++) {
      const d = b.counts[j] - a.counts[j];
      if (d > 0) { col[rowOf(b.boundaries[j], b.boundaries[j + 1])] += d; any = true; }
    }
    x.push(withH[i].t);
    counts.push(col);
  }
  if (!any) return null;
  const rows = PAUSE_ROWS.slice(0, -1).map((lo, i) => (i === 0 ? '<' + fmtSec(PAUSE_ROWS[1]) : '≥' + fmtSec(lo)));
  return { x, counts, rows, step };
}

function histQuantile(pts, q) {
  const out = [];
  const withH = pts.filter((p) => p.hist);
  for (let i = 1; i < withH.length; i++) {
    const a = withH[i - 1].hist, b = withH[i].hist;
    if (a.counts.length !== b.counts.length) continue;
    const d = b.counts.map((c, j) => Math.max(0, c - a.counts[j]));
    const tot = d.reduce((s, c) => s + c, 0);
    if (!tot) continue;
    let acc = 0, j = 0;
    for (; j < d.length; j++) { acc += d[j]; if (acc >= q * tot) break; }
    const hi = b.boundaries[j + 1];
    out.push([withH[i].t, hi === '+Inf' ? b.boundaries[j] : hi]);
  }
  return out;
}

// gcFraction: (Δgc − Δidle mark) / Δtotal between consecutive points — the
// product's gc_cpu_fraction (docs/API.md), the figure `gopulse gc` prints.
function gcFraction(gc, idleMark, total) {
  const tm = new Map(total), im = new Map(idleMark);
  const out = [];
  for (let i = 1; i < gc.length; i++) {
    const [t0, g0] = gc[i - 1], [t1, g1] = gc[i];
    const T0 = tm.get(t0), T1 = tm.get(t1);
    if (T0 == null || T1 == null || T1 <= T0 || g1 < g0) continue;
    const g = (g1 - g0) - ((im.get(t1) ?? 0) - (im.get(t0) ?? 0));
    out.push([t1, Math.min(1, Math.max(0, g) / (T1 - T0))]);
  }
  return out;
}

function placeMarkers(group) {
  const box = $('#markers');
  const u = group.charts[0];
  if (!box || !u) return;
  const { min, max } = u.scales.x;
  const left = u.over.getBoundingClientRect().left - box.getBoundingClientRect().left;
  const w = u.over.clientWidth;
  box.innerHTML = group.markers.filter((m) => m.t >= min && m.t <= max).map((m) => {
    const x = left + (m.t - min) / (max - min) * w;
    const tag = m.href ? 'a' : 'span';
    return `<${tag} class="marker m-${m.kind}" style="left:${x.toFixed(1)}px" ${m.href ? `href="${esc(m.href)}"` : ''} title="${esc(fmtTime(m.t * 1000) + ' · ' + m.label)}">▼</${tag}>`;
  }).join('');
}

function renderHealth(h) {
  if (!h) return;
  if (!h.cycles) { h.pause_p50_ms = h.pause_p99_ms = h.pause_max_ms = -1; }
  const cell = (k, v, bad) => `<div class="stat${bad ? ' bad' : ''}"><div class="k">${k}</div><div class="v">${v}</div></div>`;
  $('#health').innerHTML = [
    cell('GC cycles (last ' + fmtSec(h.window_seconds) + ')', `${h.cycles} <span class="muted small">${h.cycles_per_second ? h.cycles_per_second.toFixed(2) + '/s' : ''}</span>`),
    cell('Pause p50 / p99', `${fmtMs(h.pause_p50_ms)} / ${fmtMs(h.pause_p99_ms)}`, h.pause_p99_ms >= 50),
    cell('Pause max', fmtMs(h.pause_max_ms), h.pause_max_ms >= 100),
    cell('GC CPU', `${fmtPct(h.gc_cpu_fraction)} <span class="muted small">${esc(h.gc_cpu_source || '')}</span>`, h.gc_cpu_fraction >= 0.25),
    cell('Heap', h.limit_bytes ? `${fmtBytes(h.heap_bytes)} / ${fmtBytes(h.limit_bytes)} <span class="muted small">${esc(h.limit_source)}</span>` : `${fmtBytes(h.heap_bytes)} <span class="muted small">no limit set</span>`, h.heap_fraction >= 0.9),
  ].join('');
}

function renderBundles(bs) {
  const box = $('#bundles');
  if (!bs.length) {
    box.innerHTML = '<p class="muted">No evidence bundle in this range.</p>';
    return;
  }
  box.innerHTML = `<table class="data"><thead><tr><th>Fired</th><th>Rule</th><th>Reason</th><th>Files</th><th class="num">Size</th></tr></thead><tbody>${
    bs.map((b) => `<tr><td><a href="/bundle/${enc(b.id)}">${esc(fmtTime(b.fired_at))}</a></td><td>${esc(b.rule)}</td><td>${esc(b.reason || '')}</td><td class="small">${b.files.map((f) => esc(f.name)).join(', ')}</td><td class="num">${fmtBytes(b.size)}</td></tr>`).join('')
  }</tbody></table>`;
}
