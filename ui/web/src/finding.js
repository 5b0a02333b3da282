// The finding page: what was found, the evidence, what to do.
import { $, api, esc, enc, instPath, apiInst, fmtTime, ago, fmtMs, fmtPct, fmtBytes, fmtNum, frameHTML, kindLabel, adviceHTML } from './util.js';
import { ChartGroup, lineChart } from './charts.js';

const ADVICE = {
  'gc-pause': [
    'Stop-the-world pauses grow with the number of goroutines whose stacks must be scanned at the pause and with very large heaps of pointer-rich objects; check the goroutine chart for growth first.',
    'Long pauses on an otherwise idle service often mean the process was descheduled: look at CPU throttling (cgroup quota) and GOMAXPROCS against the container\'s CPU limit.',
    'Open the bundle\'s trace.out in `go tool trace` and look at the GC STW regions and what ran just before them.',
  ],
  'gc-cpu': [
    'The GC runs more often the less headroom the heap has: raise GOGC (e.g. 200) to trade memory for CPU, or set GOMEMLIMIT to the container limit minus a margin and GOGC=off only if the live heap is stable.',
    'Reduce allocation: the heap profile\'s alloc_space view shows who allocates; reuse buffers (sync.Pool), avoid converting []byte↔string in hot paths.',
    'If the limiter fired (/gc/limiter/last-enabled), the heap is at GOMEMLIMIT: the memory limit, not GOGC, is driving the GC.',
  ],
  'gc-advice': [
    'Set the values above in the service\'s environment (GOGC, GOMEMLIMIT) or at start-up with debug.SetGCPercent / debug.SetMemoryLimit, then compare the GC CPU chart on the instance page before and after.',
    'The prediction assumes today\'s allocation rate and live heap; a leak or a load change moves both.',
  ],
  'heap-limit': [
    'The live heap is close to the tighter of GOMEMLIMIT and the container limit: the next spike ends in an OOM kill or a GC death spiral.',
    'Compare heap live over a day on the instance page: steady growth is a leak (check the heap profile\'s inuse_space and the goroutine count), a plateau means the limit is too low for the load.',
    'Raise the container limit, or lower the load per instance; keep GOMEMLIMIT about 10% below the container limit.',
  ],
  'goroutine-leak': [
    'Every goroutine in this group is blocked at the same place and the group keeps growing: something starts them and nothing ever lets them finish.',
    'Look at the blocking frame: a channel nobody sends on or closes, a missing context cancel, a response body never closed, a WaitGroup never done.',
    'The created-by site is where the goroutine is started; make sure every path out of that function gives the goroutine a way to return (close a channel, cancel a context).',
  ],
};

export async function findingPage() {
  const id = $('#app').dataset.finding;
  const f = await api(`/api/v1/findings/${enc(id)}`);
  document.title = `${f.title} · gopulse`;
  $('#f-title').textContent = f.title;
  $('#crumb-inst').innerHTML = `<a href="${instPath(f.service, f.instance)}">${esc(f.service)} / ${esc(f.instance)}</a>`;
  $('#f-meta').innerHTML = `<span class="badge kind-${esc(f.kind)}">${esc(kindLabel(f.kind))}</span> <span class="status st-${f.state === 'open' ? 'leak' : 'ok'}">${esc(f.state)}</span> · severity ${esc(f.severity)} · opened ${esc(fmtTime(f.opened_at))} (${esc(ago(f.opened_at))}) · last seen ${esc(ago(f.last_seen))}${f.resolved_at ? ' · resolved ' + esc(fmtTime(f.resolved_at)) : ''}`;
  const d = f.details || {};
  const body = $('#finding-body');
  let html = '';
  if (f.kind === 'goroutine-leak') {
    html += `<section class="card"><h2>Goroutines in this group over time</h2><div id="leak-chart" class="charts"><p class="muted">Loading…</p></div>
      <p class="small muted">${d.count ?? '?'} goroutines now, growing ${d.growth_per_minute != null ? d.growth_per_minute.toFixed(1) : '?'} per minute over ${d.snapshots ?? '?'} snapshots; state <b>${esc(d.state || '')}</b>.</p></section>`;
    html += `<section class="card"><h2>Evidence</h2><ul class="evidence">${(d.evidence || []).map((e) => `<li>${esc(e)}</li>`).join('') || `<li>${esc(f.summary)}</li>`}</ul></section>`;
    html += `<section class="card grid2"><div><h2>Blocked at</h2>${frameHTML(d.blocking, 'hl')}<h2>Created by</h2>${frameHTML(d.created_by)}</div>
      <div><h2>Stack</h2><div class="stack">${(d.frames || []).map((fr) => frameHTML(fr, d.blocking && fr.func === d.blocking.func ? 'hl' : '')).join('')}</div></div></section>`;
  } else {
    html += `<section class="card"><h2>Why this was raised</h2><p>${esc(f.summary)}</p>${healthTable(d)}
      <p><a href="${instPath(f.service, f.instance)}?range=1h">See the charts of ${esc(f.service)} / ${esc(f.instance)}</a></p></section>`;
  }
  // GC findings carry analyze/gc's advice for this instance: that comes
  // first, with numbers; the general notes follow.
  const model = f.kind !== 'goroutine-leak' && (d.advice || []).length ? `<h3>From the GC model, for this instance</h3>${adviceHTML(d.advice, d.gc_summary)}<h3>General</h3>` : '';
  html += `<section class="card" id="f-advice"><h2>What to change</h2>${model}<ul class="advice">${(ADVICE[f.kind] || []).map((a) => `<li>${esc(a).replace(/`([^`]+)`/g, '<code>$1</code>')}</li>`).join('')}</ul></section>`;
  html += `<section class="card"><h2>Related evidence bundles</h2><div id="f-bundles">${(f.bundle_ids || []).length ? '<p class="muted">Loading…</p>' : '<p class="muted">None linked.</p>'}</div></section>`;
  html += `<section class="card"><h2>History</h2><table class="data"><thead><tr><th>At</th><th>State</th><th>Note</th></tr></thead><tbody>${
    (f.history || []).map((h) => `<tr><td>${esc(fmtTime(h.at))}</td><td>${esc(h.state)}</td><td>${esc(h.note || '')}</td></tr>`).join('')}</tbody></table></section>`;
  body.innerHTML = html;
  const jobs = [];
  if ((f.bundle_ids || []).length) jobs.push(relatedBundles(f.bundle_ids));
  if (f.kind === 'goroutine-leak') jobs.push(leakChart(f));
  await Promise.all(jobs);
}

function healthTable(h) {
  if (!h || h.cycles == null) return '';
  const r = (k, v) => `<tr><th>${k}</th><td>${v}</td></tr>`;
  return `<table class="data kv">${[
    r('GC cycles in window', `${h.cycles} over ${Math.round(h.window_seconds)} s (${(h.cycles_per_second || 0).toFixed(2)}/s)`),
    r('Pause p50 / p99 / max', `${fmtMs(h.pause_p50_ms)} / ${fmtMs(h.pause_p99_ms)} / ${fmtMs(h.pause_max_ms)}`),
    r('GC CPU', `${fmtPct(h.gc_cpu_fraction)} ${esc(h.gc_cpu_source || '')}`),
    r('Heap', `${fmtBytes(h.heap_bytes)}${h.limit_bytes ? ` of ${fmtBytes(h.limit_bytes)} ${esc(h.limit_source)} (${fmtPct(h.heap_fraction, 0)})` : ' (no limit)'}`),
    ...(h.problems || []).map((p) => r('Problem', esc(p))),
  ].join('')}</table>`;
}

async function relatedBundles(ids) {
  const bs = await Promise.all(ids.map((id) => api(`/api/v1/bundles/${enc(id)}`).catch(() => ({ id, missing: true }))));
  $('#f-bundles').innerHTML = `<table class="data"><thead><tr><th>Bundle</th><th>Fired</th><th>Rule</th><th>Files</th></tr></thead><tbody>${
    bs.map((b) => b.missing ? `<tr><td class="mono">${esc(b.id)}</td><td colspan="3" class="muted">expired (retention)</td></tr>` :
      `<tr><td><a class="mono" href="/bundle/${enc(b.id)}">${esc(b.id)}</a></td><td>${esc(fmtTime(b.fired_at))}</td><td>${esc(b.rule)}</td><td class="small">${b.files.map((x) => esc(x.name)).join(', ')}</td></tr>`).join('')}</tbody></table>`;
}

async function leakChart(f) {
  const start = Date.parse(f.opened_at) - 3600e3;
  const r = await api(`${apiInst(f.service, f.instance)}/goroutines?limit=200&start=${start}`);
  const grp = [], tot = [];
  for (const s of r.snapshots) {
    const g = (s.groups || []).find((x) => x.key === f.key);
    grp.push([s.time, g ? g.count : 0]);
    tot.push([s.time, s.goroutines]);
  }
  const box = $('#leak-chart');
  box.innerHTML = '';
  if (grp.length < 1) { box.innerHTML = '<p class="muted">No goroutine snapshot is left for this range.</p>'; return; }
  const el = document.createElement('div');
  el.className = 'chart';
  box.appendChild(el);
  lineChart(el, new ChartGroup('leak'), {
    title: 'Goroutines',
    series: [{ label: 'this group', pts: grp, color: '#ef4444', width: 2, fill: 'rgba(239,68,68,0.12)' }, { label: 'all goroutines', pts: tot, color: '#3b82f6' }],
    yfmt: fmtNum, width: Math.max(320, box.clientWidth), height: 240,
  });
}
