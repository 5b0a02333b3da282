// Charts: thin wrappers over uPlot (lines) plus a heatmap drawn inside a
// uPlot chart so it shares the cursor, zoom and markers with the others.
import uPlot from 'uplot';
import { cssVar, fmtTime, esc } from './util.js';

export const PALETTE = ['#3b82f6', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#06b6d4', '#ec4899'];

// align merges series with their own timestamps (ms) onto one x axis
// (seconds, as uPlot wants), null where a series has no point.
export function align(seriesPts) {
  const xs = new Set();
  for (const pts of seriesPts) for (const p of pts) xs.add(p[0]);
  const x = Array.from(xs).sort((a, b) => a - b);
  const idx = new Map(x.map((t, i) => [t, i]));
  const out = [x.map((t) => t / 1000)];
  for (const pts of seriesPts) {
    const col = new Array(x.length).fill(null);
    for (const [t, v] of pts) col[idx.get(t)] = v;
    out.push(col);
  }
  return out;
}

function axisColors() {
  return { stroke: cssVar('--fg-muted'), grid: cssVar('--grid') };
}

// A group links charts: cursor position, x zoom and markers are shared.
export class ChartGroup {
  constructor(key) {
    this.key = key;
    this.charts = [];
    this.markers = []; // {t (s), label, href, kind}
    this.syncing = false;
    this.onScale = null;
  }
  add(u) { this.charts.push(u); }
  destroy() {
    for (const u of this.charts) u.destroy();
    this.charts = [];
  }
  setX(min, max, from) {
    if (this.syncing) return;
    this.syncing = true;
    for (const u of this.charts) if (u !== from) u.setScale('x', { min, max });
    this.syncing = false;
    if (this.onScale) this.onScale(min, max);
  }
}

function markerPlugin(group) {
  return {
    hooks: {
      draw: [(u) => {
        if (!group.markers.length) return;
        const { ctx } = u;
        const { top, height } = u.bbox;
        ctx.save();
        ctx.lineWidth = 1 * devicePixelRatio;
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        for (const m of group.markers) {
          const x = Math.round(u.valToPos(m.t, 'x', true));
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = m.kind === 'pause' ? '#ef4444' : '#a855f7';
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
        }
        ctx.restore();
      }],
    },
  };
}

function baseOpts(group, title, width, height, yfmt) {
  const c = axisColors();
  return {
    title,
    width,
    height,
    cursor: { sync: { key: group.key, setSeries: false }, drag: { x: true, y: false, setScale: true } },
    legend: { live: true },
    scales: { x: { time: true } },
    axes: [
      { stroke: c.stroke, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid } },
      { stroke: c.stroke, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid }, size: 64,
        values: (u, vals) => vals.map((v) => (v == null ? '' : yfmt(v))) },
    ],
    plugins: [markerPlugin(group)],
    hooks: {
      setScale: [(u, key) => {
        if (key === 'x') group.setX(u.scales.x.min, u.scales.x.max, u);
      }],
    },
  };
}

// lineChart draws named series over time. series: [{label, pts:[[tms,v]], color, dash, fill}]
export function lineChart(el, group, { title, series, yfmt, width, height = 200, yMin0 = true }) {
  const data = align(series.map((s) => s.pts));
  const opts = baseOpts(group, title, width, height, yfmt);
  opts.scales.y = yMin0 ? { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1] } : {};
  opts.series = [{ value: (u, v) => (v == null ? '–' : fmtTime(v * 1000)) }].concat(series.map((s, i) => ({
    label: s.label,
    stroke: s.color || PALETTE[i % PALETTE.length],
    width: s.width || 1.5,
    dash: s.dash,
    fill: s.fill,
    spanGaps: false,
    // Dots only when the line is too short to see.
    points: { show: data[0].length < 40, size: 4 },
    value: (u, v) => (v == null ? '–' : yfmt(v)),
  })));
  const u = new uPlot(opts, data, el);
  group.add(u);
  return u;
}

// heatmapChart draws counts per (time bucket, row). cells: {x: [tms...],
// rows: [label...], counts: [[count per row] per x], step (ms)}.
export function heatmapChart(el, group, { title, cells, width, height = 220 }) {
  const n = cells.rows.length;
  const xs = cells.x.map((t) => t / 1000);
  let max = 0;
  for (const col of cells.counts) for (const c of col) if (c > max) max = c;
  const hue = 12;
  const dark = document.documentElement.getAttribute('data-theme') === 'dark';
  const opts = baseOpts(group, title, width, height, (v) => cells.rows[Math.round(v)] || '');
  opts.axes[1].values = (u, vals) => vals.map((v) => (Number.isInteger(v) && v >= 0 && v < n ? cells.rows[v] : ''));
  opts.axes[1].size = 76;
  opts.axes[1].incrs = [1, 2, 3, 4];
  opts.scales.y = { range: () => [0, n] };
  // One invisible series carrying per-column totals for the legend.
  opts.series = [
    { value: (u, v) => (v == null ? '–' : fmtTime(v * 1000)) },
    { label: 'pauses in bucket', stroke: 'transparent', points: { show: false }, value: (u, v) => (v == null ? '–' : String(v)) },
  ];
  const totals = cells.counts.map((col) => col.reduce((a, b) => a + b, 0));
  opts.hooks.drawClear = [(u) => {
    const { ctx } = u;
    const stepS = cells.step / 1000;
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    for (let i = 0; i < xs.length; i++) {
      const x0 = u.valToPos(xs[i], 'x', true);
      const x1 = u.valToPos(xs[i] + stepS, 'x', true);
      if (x1 < u.bbox.left || x0 > u.bbox.left + u.bbox.width) continue;
      const col = cells.counts[i];
      for (let r = 0; r < n; r++) {
        const c = col[r];
        if (!c) continue;
        const y0 = u.valToPos(r + 1, 'y', true);
        const y1 = u.valToPos(r, 'y', true);
        const f = Math.log1p(c) / Math.log1p(max);
        const light = dark ? 25 + 45 * f : 85 - 50 * f;
        ctx.fillStyle = `hsl(${hue - 12 * f}, ${60 + 35 * f}%, ${light}%)`;
        ctx.fillRect(x0, y0, Math.max(1, x1 - x0 - 0.5), Math.max(1, y1 - y0 - 0.5));
      }
    }
    ctx.restore();
  }];
  const u = new uPlot(opts, [xs, totals], el);
  group.add(u);
  return u;
}

export function emptyChart(el, title, why) {
  el.classList.add('empty');
  el.innerHTML = `<div class="chart-empty"><div class="u-title">${esc(title)}</div><p class="muted">${esc(why)}</p></div>`;
}
