// The fleet page: every instance seen in the last 24 h with its health.
// The whole table comes from one /api/v1/fleet call, whose GC pause p99,
// GC CPU and goroutine sparkline cover a recent window (15 min), so every
// column sorts over all rows; a second call lists the open findings.
import { $, $$, api, esc, instPath, fmtBytes, fmtNum, fmtPct, fmtMs, ago, sparkline, kindLabel } from './util.js';

const STALE_MS = 2 * 60 * 1000;
const STATUS_RANK = { leak: 4, warning: 3, stale: 1, ok: 2 };

function heapFrac(row) {
  if (!row.heap_bytes) return { heap: null };
  if (row.limit_bytes) return { heap: row.heap_bytes, lim: row.limit_bytes, frac: row.heap_fraction, what: row.limit_source };
  return { heap: row.heap_bytes, frac: null };
}

export async function fleetPage() {
  const t0 = performance.now();
  const [fleet, findings] = await Promise.all([
    api('/api/v1/fleet?since=24h'),
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
    if (r.open_leaks > 0) status = 'leak';
    else if (r.open_findings > 0) status = 'warning';
    else if (stale) status = 'stale';
    return {
      r, fs, hf, status,
      service: r.service, id: r.id, source: r.source,
      gccpu: r.gc.gc_cpu_fraction >= 0 ? r.gc.gc_cpu_fraction : null, gcsrc: r.gc.gc_cpu_source || '',
      heapfrac: hf.frac ?? (hf.heap != null ? -1 : null),
      goroutines: r.goroutines >= 0 ? r.goroutines : null, findings: r.open_findings, lastseen: Date.parse(r.last_seen),
      p99: r.gc.cycles > 0 ? r.gc.pause_p99_ms : null, cycles: r.gc.cycles, spark: r.goroutines_series.map((p) => p[1]),
    };
  });
  renderFindings(findings.findings);
  const svcs = [...new Set(rows.map((x) => x.service))].sort();
  const sel = $('#service-filter');
  sel.insertAdjacentHTML('beforeend', svcs.map((s) => `<option>${esc(s)}</option>`).join(''));
  $('#fleet-summary').textContent = `${rows.length} instance${rows.length === 1 ? '' : 's'} of ${svcs.length} service${svcs.length === 1 ? '' : 's'} seen in the last 24 h · ${findings.findings.length} open finding${findings.findings.length === 1 ? '' : 's'} · GC and goroutine columns over the last ${Math.round(fleet.window_seconds / 60)} min`;

  const state = { key: 'status', dir: -1, q: '', svc: '', only: false };
  const tbody = $('#fleet tbody');
  rows.forEach((x, i) => { x.idx = i; });

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
    <td class="num p99" title="${x.cycles} GC cycles in the window">${fmtMs(x.p99)}</td>
    <td class="num" title="${esc(x.gcsrc)}">${fmtPct(x.gccpu)}${/since process start/.test(x.gcsrc) ? '<sup class="muted">*</sup>' : ''}</td>
    <td class="heap">${heapCell(x)}</td>
    <td class="num">${fmtNum(x.goroutines)}</td>
    <td class="spark-cell">${x.spark.length ? sparkline(x.spark) : ''}</td>
    <td class="num">${fl}</td>
    <td class="num" title="${esc(x.r.last_seen)}">${esc(ago(x.lastseen))}</td>
  </tr>`;
}
