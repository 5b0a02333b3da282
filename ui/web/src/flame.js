// A small canvas flame graph (root on top, callees below). Click a frame
// to zoom into it, click the root to zoom out; hover for the numbers.
import { cssVar, esc } from './util.js';

const ROW = 18;

function hash(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
  return h >>> 0;
}

// Frames of one package share a hue so a reader sees modules as colour.
function colorOf(name, dark) {
  const pkg = name.replace(/^(.*?\/)?([^./]+)[.(].*$/, '$1$2');
  const h = hash(pkg);
  if (name.startsWith('runtime.')) return dark ? 'hsl(210,20%,38%)' : 'hsl(210,25%,78%)';
  const hue = 10 + (h % 50); // warm range
  return dark ? `hsl(${hue},55%,${34 + (h >> 8) % 10}%)` : `hsl(${hue},85%,${64 + (h >> 8) % 14}%)`;
}

export function flameGraph(container, prof, fmt) {
  const names = prof.names;
  const canvas = document.createElement('canvas');
  canvas.className = 'flame';
  const tip = document.createElement('div');
  tip.className = 'flame-tip';
  tip.hidden = true;
  container.innerHTML = '';
  container.append(canvas, tip);
  let focus = prof.root;
  let path = [prof.root]; // focus's ancestors, root first
  let hits = [];
  const depth = (n) => 1 + (n.c ? Math.max(0, ...n.c.map(depth)) : 0);
  const maxDepth = depth(prof.root);

  function draw() {
    const dark = document.documentElement.getAttribute('data-theme') === 'dark';
    const dpr = window.devicePixelRatio || 1;
    const W = container.clientWidth || 800;
    const rows = maxDepth + path.length - 1;
    const H = Math.min(rows, 200) * ROW;
    canvas.style.width = W + 'px';
    canvas.style.height = H + 'px';
    canvas.width = W * dpr;
    canvas.height = H * dpr;
    const ctx = canvas.getContext('2d');
    ctx.scale(dpr, dpr);
    ctx.font = '12px ui-monospace, SFMono-Regular, Menlo, monospace';
    ctx.textBaseline = 'middle';
    hits = [];
    const fg = dark ? '#e5e7eb' : '#111827';
    // Ancestors of the focus, full width, dimmed.
    path.forEach((n, i) => {
      if (n === focus) return;
      box(ctx, n, 0, i * ROW, W, dark, fg, true);
    });
    const y0 = (path.length - 1) * ROW;
    const total = focus.v || 1;
    const walk = (n, x, y, w) => {
      if (w < 0.5 || y > H) return;
      box(ctx, n, x, y, w, dark, fg, false);
      let cx = x;
      for (const k of n.c || []) {
        const kw = (k.v / n.v) * w;
        walk(k, cx, y + ROW, kw);
        cx += kw;
      }
    };
    walk(focus, 0, y0, W);
    void total;
  }

  function box(ctx, n, x, y, w, dark, fg, dim) {
    const name = names[n.n];
    ctx.fillStyle = n === prof.root ? (dark ? '#374151' : '#d1d5db') : colorOf(name, dark);
    ctx.globalAlpha = dim ? 0.55 : 1;
    ctx.fillRect(x, y, Math.max(0.5, w - 1), ROW - 1);
    ctx.globalAlpha = 1;
    if (w > 30) {
      ctx.fillStyle = fg;
      const label = n === prof.root ? `all (${fmt(n.v)})` : name;
      const max = Math.floor((w - 6) / 7.2);
      ctx.fillText(label.length > max ? label.slice(0, Math.max(0, max - 1)) + '…' : label, x + 3, y + ROW / 2);
    }
    hits.push({ n, x, y, w });
  }

  const find = (e) => {
    const r = canvas.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    for (let i = hits.length - 1; i >= 0; i--) {
      const h = hits[i];
      if (x >= h.x && x < h.x + h.w && y >= h.y && y < h.y + ROW) return h;
    }
    return null;
  };
  canvas.addEventListener('mousemove', (e) => {
    const h = find(e);
    if (!h) { tip.hidden = true; return; }
    const pct = (100 * h.n.v / (prof.root.v || 1)).toFixed(2);
    tip.innerHTML = `<b>${esc(h.n === prof.root ? 'all' : names[h.n.n])}</b><br>${esc(fmt(h.n.v))} · ${pct}% of total`;
    tip.hidden = false;
    const cr = container.getBoundingClientRect();
    tip.style.left = Math.min(e.clientX - cr.left + 12, cr.width - 260) + 'px';
    tip.style.top = (e.clientY - cr.top + 14) + 'px';
  });
  canvas.addEventListener('mouseleave', () => { tip.hidden = true; });
  canvas.addEventListener('click', (e) => {
    const h = find(e);
    if (!h) return;
    const i = path.indexOf(h.n);
    if (i >= 0) { path = path.slice(0, i + 1); focus = h.n; }
    else {
      // Rebuild the path from the root down to the clicked node.
      const trail = [];
      const dfs = (n) => {
        trail.push(n);
        if (n === h.n) return true;
        for (const k of n.c || []) if (dfs(k)) return true;
        trail.pop();
        return false;
      };
      dfs(prof.root);
      path = trail;
      focus = h.n;
    }
    draw();
  });
  draw();
  return { redraw: draw };
}

// fmtFor picks a formatter for a pprof sample unit.
export function fmtFor(unit, fmtBytes, fmtSec, fmtNum) {
  if (unit === 'bytes') return fmtBytes;
  if (unit === 'nanoseconds') return (v) => fmtSec(v / 1e9);
  return (v) => fmtNum(v) + (unit && unit !== 'count' ? ' ' + unit : '');
}
