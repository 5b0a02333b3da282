// The fleet page: every instance seen in the last 24 h with its health.
// The table comes from one /api/v1/fleet call; the GC pause p99 and the
// goroutine sparkline need one call per instance each, so they load only
// for rows that scroll into view, a few at a time.
import { $, $$, api, esc, enc, instPath, apiInst, fmtBytes, fmtNum, fmtPct, fmtMs, ago, isLimit, sparkline, pool, kindLabel } from './util.js';

const N = {
  gor: '/sched/goroutines:goroutines',
  live: '/gc/heap/live:bytes',
  goal: '/gc/heap/goal:bytes',
  memlimit: '/gc/gomemlimit:bytes',
  cglimit: '/cgroup/memory/limit:bytes',
  msheap: '/memstats/heap-alloc:bytes',
  msgccpu: '/memstats/gc-cpu-fraction:fraction',
  cpugc: '/cpu/classes/gc/total:cpu-seconds',
  cputotal: '/cpu/classes/total:cpu-seconds',
  cpuidle: '/cpu/classes/idle:cpu-seconds',
};
const STALE_MS = 2 * 60 * 1000;
const STATUS_RANK = { leak: 4, warning: 3, stale: 1, ok: 2 };

function val(row, name) {
  const l = row.latest && row.latest[name];
  return l ? l.value : null;
}

// gcCPU is the GC's share of non-idle CPU since the process started: the
// fleet call returns one value per metric, so a window is not available
// here (the instance page shows the windowed share).
function gcCPU(row) {
  const f = val(row, N.msgccpu);
  if (f != null) return f;
  const gc = val(row, N.cpugc), tot = val(row, N.cputotal), idle = val(row, N.cpuidle);
  if (gc == null || tot == null) return null;
  const busy = tot - (idle || 0);
  return busy > 0 ? gc / busy : null;
}

function heapFrac(row) {
  const heap = val(row, N.live) ?? val(row, N.msheap);
  const lims = [val(row, N.memlimit), val(row, N.cglimit)].filter(isLimit);
  if (heap == null) return { heap: null };
  if (lims.length) {
    const lim = Math.min(...lims);
    return { heap, lim, frac: heap / lim, what: lim === val(row, N.memlimit) ? 'GOMEMLIMIT' : 'cgroup limit' };
  }
  const goal = val(row, N.goal);
  return { heap, goal, frac: null };
}

export async function fleetPage() {
  const t0 = performance.now();
  const names = Object.values(N).join(',');
  const [fleet, findings] = await Promise.all([
    api(`/api/v1/fleet?since=24h&names=${enc(names)}`),
    api('/api/v1/findings?state=open&limit=1000'),
  ]);
  const byInst = new Map();
  for (const f of findings.findings) {
    const k = f.service + '\u0000' + f.instance;
    if (!byInst.has(k)) byInst.set(k, []);
    byInst.get(k).push(f);
  }
  const now = Date.now();
  const rows = fleet.instances.map((r) => {
    const fs = byInst.get(r.service + '\u0000' + r.id) || [];
    const hf = heapFrac(r);
    const stale = now - Date.parse(r.last_seen) > STALE_MS;
    let status = 'ok';
    if (fs.some((f) => f.kind === 'goroutine-leak')) status = 'leak';
    else if (fs.length) status = 'warning';
    else if (stale) status = 'stale';
    return {
      r, fs, hf, status,
      service: r.service, id: r.id, source: r.source,
      gccpu: gcCPU(r), heapfrac: hf.frac ?? (hf.heap != null ? -1 : null),
      goroutines: val(r, N.gor), findings: fs.length, lastseen: Date.parse(r.last_seen),
      p99: undefined, spark: null,
    };
  });
  renderFindings(findings.findings);
  const svcs = [...new Set(rows.map((x) => x.service))].sort();
  const sel = $('#service-filter');
  sel.insertAdjacentHTML('beforeend', svcs.map((s) => `<option>${esc(s)}</option>`).join(''));
  $('#fleet-summary').textContent = `${rows.length} instance${rows.length === 1 ? '' : 's'} of ${svcs.length} service${svcs.length === 1 ? '' : 's'} seen in the last 24 h · ${findings.findings.length} open finding${findings.findings.length === 1 ? '' : 's'}`;

  const state = { key: 'status', dir: -1, q: '', svc: '', only: false };
  const tbody = $('#fleet tbody');
  const byKey = new Map();
  rows.forEach((x, i) => { x.idx = i; byKey.set(String(i), x); });

  const cmp = (a, b) => {
    const k = state.key;
    let va = k === 'status' ? STATUS_RANK[a.status] : a[k];
    let vb = k === 'status' ? STATUS_RANK[b.status] : b[k];
    if (va == null && vb == null) return a.idx - b.idx;
    if (va == null) return 1; // unknown values sink, whatever the direction
    if (vb == null) return -1;
    if (typeof va === 'string') return state.dir * va.localeCompare(vb) || a.idx - b.idx;
    return state.dir * (va - vb) || a.idx - b.idx;
  };

  let observer = null;
  const render = () => {
    const q = state.q.toLowerCase();
    const vis = rows.filter((x) => (!state.svc || x.service === state.svc) && (!state.only || x.findings > 0) &&
      (!q || `${x.service} ${x.id} ${x.r.host || ''} ${x.status} ${x.source} ${x.r.go_version || ''}`.toLowerCase().includes(q)));
    vis.sort(cmp);
    tbody.innerHTML = vis.map(rowHTML).join('') ||
      `<tr><td colspan="11" class="muted">${rows.length ? 'No instance matches the filter.' : 'No instance has reported in the last 24 h. Start an agent or pass --scrape NAME=URL to the server.'}</td></tr>`;
    $$('#fleet th').forEach((th) => {
      th.removeAttribute('aria-sort');
      if (th.dataset.key === state.key) th.setAttribute('aria-sort', state.dir > 0 ? 'ascending' : 'descending');
    });
    $('#fleet-foot').textContent = vis.length === rows.length ? '' : `${vis.length} of ${rows.length} shown`;
    if (observer) observer.disconnect();
    observer = lazyLoad(tbody, byKey);
  };
  $$('#fleet th').forEach((th) => {
    if (th.classList.contains('nosort')) return;
    th.tabIndex = 0;
    const go = () => {
      if (state.key === th.dataset.key) state.dir = -state.dir;
      else { state.key = th.dataset.key; state.dir = ['service', 'id', 'source'].includes(state.key) ? 1 : -1; }
      render();
    };
    th.addEventListener('click', go);
    th.addEventListener('keydown', (e) => { if (e.key === 'Enter') go(); });
  });
  $('#filter').addEventListener('input', (e) => { state.q = e.target.value; render(); });
  sel.addEventListener('change', (e) => { state.svc = e.target.value; render(); });
  $('#only-findings').addEventListener('change', (e) => { state.only = e.target.checked; render(); });
  render();
  document.body.dataset.rendered = String(Math.round(performance.now() - t0));
}

function renderFindings(list) {
  const box = $('#findings-list');
  if (!list.length) {
    box.innerHTML = '<p class="muted">No open findings: no goroutine group is growing and GC pauses, GC CPU and heap are within limits.</p>';
    return;
  }
  box.innerHTML = list.slice(0, 50).map(findingHTML).join('') +
    (list.length > 50 ? `<p class="muted small">and ${list.length - 50} more</p>` : '');
}

export function findingHTML(f) {
  return `<a class="finding sev-${esc(f.severity)}" href="/finding/${f.id}">
    <span class="badge kind-${esc(f.kind)}">${esc(kindLabel(f.kind))}</span>
    <span class="title">${esc(f.title)}</span>
    <span class="where muted">${esc(f.service)} / ${esc(f.instance)} · since ${esc(ago(f.opened_at))}</span></a>`;
}

function heapCell(x) {
  const hf = x.hf;
  if (hf.heap == null) return '<span class="muted">–</span>';
  if (hf.frac != null) {
    const p = Math.min(1, hf.frac);
    const cls = hf.frac >= 0.9 ? 'bad' : hf.frac >= 0.7 ? 'warn' : 'good';
    return `<div class="bar ${cls}" title="${fmtBytes(hf.heap)} of ${fmtBytes(hf.lim)} ${hf.what}"><span style="width:${(p * 100).toFixed(1)}%"></span></div><span class="small">${fmtBytes(hf.heap)} / ${fmtBytes(hf.lim)}</span>`;
  }
  return `<span class="small" title="no GOMEMLIMIT or cgroup limit">${fmtBytes(hf.heap)}${hf.goal ? ` <span class="muted">goal ${fmtBytes(hf.goal)}</span>` : ''} · no limit</span>`;
}

function rowHTML(x) {
  const st = { leak: 'leak', warning: 'warning', stale: 'stale', ok: 'ok' }[x.status];
  const href = instPath(x.service, x.id);
  const fl = x.fs.length ? `<a href="/finding/${x.fs[0].id}" title="${esc(x.fs.map((f) => f.title).join('\n'))}">${x.fs.length}</a>` : '0';
  return `<tr data-k="${x.idx}">
    <td><span class="status st-${st}">${st}</span></td>
    <td>${esc(x.service)}</td>
    <td><a href="${href}">${esc(x.id)}</a>${x.r.host && x.r.host !== x.id ? `<div class="muted small">${esc(x.r.host)}${x.r.pid ? ' pid ' + x.r.pid : ''}</div>` : ''}</td>
    <td><span class="muted">${esc(x.source)}</span></td>
    <td class="num p99">${x.p99 === undefined ? '<span class="muted">…</span>' : fmtMs(x.p99)}</td>
    <td class="num">${fmtPct(x.gccpu)}</td>
    <td class="heap">${heapCell(x)}</td>
    <td class="num">${fmtNum(x.goroutines)}</td>
    <td class="spark-cell">${x.spark == null ? '' : sparkline(x.spark)}</td>
    <td class="num">${fl}</td>
    <td class="num" title="${esc(x.r.last_seen)}">${esc(ago(x.lastseen))}</td>
  </tr>`;
}

// lazyLoad fetches the per-instance details of rows as they become
// visible. Each row is fetched once per page load.
function lazyLoad(tbody, byKey) {
  const queue = [];
  let running = false;
  const drain = async () => {
    if (running) return;
    running = true;
    while (queue.length) {
      const batch = queue.splice(0, queue.length);
      await pool(batch, 4, loadRow);
    }
    running = false;
  };
  const io = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      io.unobserve(e.target);
      const x = byKey.get(e.target.dataset.k);
      if (x && !x.loading) { x.loading = true; queue.push({ x, tr: e.target }); }
    }
    drain();
  }, { rootMargin: '200px' });
  for (const tr of tbody.querySelectorAll('tr[data-k]')) {
    const x = byKey.get(tr.dataset.k);
    if (x && x.loading) continue;
    io.observe(tr);
  }
  return io;
}

async function loadRow({ x }) {
  const base = apiInst(x.service, x.id);
  const [gc, ser] = await Promise.all([
    api(`${base}/gc?start=5m`).catch(() => null),
    api(`${base}/series?name=${enc(N.gor)}&start=1h&step=1m`).catch(() => null),
  ]);
  let sp = ser ? ser.points : [];
  if (sp.length < 4) {
    // A young instance has few whole minutes: show its last 15 min instead.
    const fine = await api(`${base}/series?name=${enc(N.gor)}&start=15m&step=10s`).catch(() => null);
    if (fine) sp = fine.points;
  }
  x.p99 = gc && gc.health && gc.health.cycles > 0 ? gc.health.pause_p99_ms : null;
  x.spark = sp.map((p) => p.value);
  const tr = document.querySelector(`#fleet tr[data-k="${x.idx}"]`);
  if (tr) {
    tr.querySelector('.p99').innerHTML = fmtMs(x.p99);
    tr.querySelector('.spark-cell').innerHTML = sparkline(x.spark);
  }
}
