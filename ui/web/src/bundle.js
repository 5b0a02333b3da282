// The bundle page: the files, how to open them, the goroutine groups and
// flame graphs of the profiles.
import { $, $$, api, esc, enc, instPath, apiInst, fmtTime, fmtBytes, fmtSec, fmtNum, fmtPct, frameHTML, showError } from './util.js';
import { flameGraph, fmtFor } from './flame.js';

const PPROF = 'application/vnd.google.protobuf+pprof';
const TRACE = 'application/vnd.go.trace';
const isProfile = (f) => f.content_type === PPROF || /\.pb\.gz$/.test(f.name);

export async function bundlePage() {
  const id = $('#app').dataset.bundle;
  const b = await api(`/api/v1/bundles/${enc(id)}`);
  $('#crumb-inst').innerHTML = `<a href="${instPath(b.service, b.instance)}">${esc(b.service)} / ${esc(b.instance)}</a>`;
  $('#b-meta').innerHTML = `rule <b>${esc(b.rule)}</b>${b.reason ? ' · ' + esc(b.reason) : ''} · fired ${esc(fmtTime(b.fired_at))} · ${fmtBytes(b.size)}${b.capture_stw_seconds ? ` · capture stopped the world for ${fmtSec(b.capture_stw_seconds)}` : ''}`;
  const origin = location.origin;
  const cmd = (f) => {
    const url = origin + f.url.replace(/\.[^/]*$/, '');
    if (isProfile(f)) return `go tool pprof ${url}`;
    if (f.content_type === TRACE || /\.out$/.test(f.name)) return `curl -so ${b.id}-${f.name} ${origin + f.url} && go tool trace ${b.id}-${f.name}`;
    return `curl -O ${origin + f.url}`;
  };
  let html = '';
  if ((b.values || []).length || (b.notes || []).length) {
    html += `<section class="card"><h2>Why it fired</h2>${(b.values || []).length ? `<table class="data"><thead><tr><th>Value</th><th class="num">Observed</th><th class="num">Threshold</th><th>Unit</th></tr></thead><tbody>${
      b.values.map((v) => `<tr><td class="mono">${esc(v.Name)}</td><td class="num">${fmtNum(v.Value)}</td><td class="num">${fmtNum(v.Threshold)}</td><td>${esc(v.Unit)}</td></tr>`).join('')}</tbody></table>` : ''}
      ${(b.notes || []).length ? `<ul class="notes">${b.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}</section>`;
  }
  html += `<section class="card"><h2>Files</h2><table class="data files"><thead><tr><th>File</th><th class="num">Size</th><th>Open it with</th><th>Note</th></tr></thead><tbody>${
    b.files.map((f) => `<tr><td><a href="${esc(f.url)}" download>${esc(f.name)}</a><div class="muted small">${esc(f.content_type)}</div></td><td class="num">${fmtBytes(f.size)}</td>
      <td><code class="cmd">${esc(cmd(f))}</code> <button type="button" class="copy" data-copy="${esc(cmd(f))}" title="Copy command">copy</button></td><td class="small">${esc(f.note || '')}</td></tr>`).join('')}</tbody></table></section>`;
  const profs = b.files.filter(isProfile);
  if (profs.length) {
    html += `<section class="card"><div class="toolbar"><h2>Flame graph</h2><div class="tabs" role="tablist">${
      profs.map((f, i) => `<button type="button" role="tab" data-file="${esc(f.name)}" aria-selected="${i === 0}">${esc(f.name.replace(/\.pb\.gz$/, ''))}</button>`).join('')}</div>
      <select id="sample-type" aria-label="Sample type"></select><span class="muted small">Click a frame to zoom; click the top bar to zoom out.</span></div>
      <div id="flame" class="flame-box"><p class="muted">Loading…</p></div><p id="flame-foot" class="muted small"></p></section>`;
  }
  html += `<section class="card"><h2>Goroutine groups</h2><div id="groups"><p class="muted">Loading…</p></div></section>`;
  const tf = b.files.find((f) => f.content_type === TRACE || /\.out$/.test(f.name));
  if (tf) {
    html += `<section class="card" id="trace-card"><h2>Execution trace</h2><p class="muted small">The window before the trigger, from <b>${esc(tf.name)}</b>; <code>go tool trace</code> (command above) shows every event.</p><div id="trace"><p class="muted">Loading…</p></div></section>`;
  }
  $('#bundle-body').innerHTML = html;
  $$('button.copy').forEach((btn) => btn.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(btn.dataset.copy); btn.textContent = 'copied'; } catch (e) { btn.textContent = 'select it'; }
    setTimeout(() => { btn.textContent = 'copy'; }, 1500);
  }));
  const jobs = [groups(b)];
  if (tf) jobs.push(traceSummary(b.id, tf.name).catch((e) => { $('#trace').innerHTML = `<p class="muted">${esc(e.message)}</p>`; }));
  if (profs.length) {
    const show = (file, si) => loadFlame(b.id, file, si).catch((e) => showError(e.message));
    $$('.tabs button').forEach((t) => t.addEventListener('click', () => {
      $$('.tabs button').forEach((x) => x.setAttribute('aria-selected', String(x === t)));
      show(t.dataset.file);
    }));
    $('#sample-type').addEventListener('change', (e) => show($('.tabs button[aria-selected="true"]').dataset.file, e.target.value));
    const first = profs.find((f) => f.name.startsWith('cpu')) || profs.find((f) => f.name.startsWith('heap')) || profs[0];
    $$('.tabs button').forEach((x) => x.setAttribute('aria-selected', String(x.dataset.file === first.name)));
    jobs.push(show(first.name));
  }
  await Promise.all(jobs);
}

let flame = null;
async function loadFlame(id, file, si) {
  const p = await api(`/ui/api/profile?bundle=${enc(id)}&file=${enc(file)}${si != null ? '&si=' + si : ''}`);
  const sel = $('#sample-type');
  sel.innerHTML = p.sample_types.map((s, i) => `<option value="${i}"${i === p.index ? ' selected' : ''}>${esc(s.type)} (${esc(s.unit)})</option>`).join('');
  const st = p.sample_types[p.index] || { unit: '' };
  const fmt = fmtFor(st.unit, fmtBytes, fmtSec, fmtNum);
  const box = $('#flame');
  if (!p.total) {
    box.innerHTML = `<p class="muted">The profile holds no ${esc(st.type || '')} samples${file.startsWith('cpu') ? ' — the process was idle while it was taken' : ''}.</p>`;
  } else {
    flame = flameGraph(box, p, fmt);
  }
  $('#flame-foot').textContent = `${file}: total ${fmt(p.total)}${p.duration_nanos ? ` over ${fmtSec(p.duration_nanos / 1e9)}` : ''}${p.pruned ? ` · ${p.pruned} frames below ${fmt(p.min_value)} not drawn` : ''}`;
  box.dataset.file = file;
  box.dataset.total = String(p.total);
}

window.addEventListener('themechange', () => flame && flame.redraw());

// groups prefers the collector's analysed snapshot (states, leak counts);
// without one it groups the bundle's goroutine profile by stack.
async function groups(b) {
  const box = $('#groups');
  const fired = Date.parse(b.fired_at);
  let snap = null;
  try {
    const r = await api(`${apiInst(b.service, b.instance)}/goroutines?start=${fired - 120e3}&limit=50`);
    snap = r.snapshots.find((s) => s.source === 'bundle:' + b.id);
  } catch (e) { /* fall back to the profile */ }
  if (snap) {
    const gs = (snap.groups || []).slice().sort((a, c) => c.count - a.count);
    box.innerHTML = `<p class="muted small">${snap.goroutines} goroutines in ${gs.length} groups at ${esc(fmtTime(snap.time))}.</p><table class="data groups"><thead><tr><th class="num">Count</th><th>State</th><th class="num">Leaked</th><th>Top of stack</th><th>Created by</th></tr></thead><tbody>${
      gs.slice(0, 200).map((g) => `<tr class="${g.leaked ? 'leaked' : ''}"><td class="num">${g.count}</td><td>${esc(g.state)}</td><td class="num">${g.leaked || ''}</td>
        <td>${(g.stack && g.stack.frames || []).slice(0, 3).map((f) => frameHTML(f)).join('')}</td><td>${frameHTML(g.stack && g.stack.created_by)}</td></tr>`).join('')}</tbody></table>`;
    return;
  }
  const gf = b.files.find((f) => f.name.startsWith('goroutine') && isProfile(f));
  if (!gf) { box.innerHTML = '<p class="muted">This bundle has no goroutine profile.</p>'; return; }
  const p = await api(`/ui/api/profile?bundle=${enc(b.id)}&file=${enc(gf.name)}`);
  box.innerHTML = `<p class="muted small">${p.total} goroutines in ${p.stacks.length} distinct stacks (from ${esc(gf.name)}).</p><table class="data groups"><thead><tr><th class="num">Count</th><th>Stack (top frames)</th></tr></thead><tbody>${
    p.stacks.map((s) => `<tr><td class="num">${s.value}</td><td>${s.frames.slice(0, 4).map((f) => frameHTML(f)).join('')}</td></tr>`).join('')}</tbody></table>`;
}

// traceSummary shows the stop-the-world periods and the goroutines that
// waited longest in the bundle's execution trace.
async function traceSummary(id, file) {
  const s = await api(`/ui/api/trace?bundle=${enc(id)}&file=${enc(file)}`);
  const stw = (label, p, why) => `<tr><th scope="row">${label}<div class="muted small">${why}</div></th><td class="num">${p.count}</td><td class="num">${fmtSec(p.total_seconds)}</td><td class="num">${fmtSec(p.max_seconds)}</td>
    <td class="num">${s.duration_seconds > 0 ? fmtPct(p.total_seconds / s.duration_seconds) : '–'}</td></tr>`;
  const lw = s.longest_waiting;
  $('#trace').innerHTML = `<p class="small">${fmtSec(s.duration_seconds)} traced (format Go ${esc(s.version)}) · ${s.goroutines} goroutines · ${s.gc_cycles} GC cycle${s.gc_cycles === 1 ? '' : 's'} began${s.truncated ? ` · <b>truncated</b>: ${esc(s.problem)}` : ''}</p>
    <table class="data stw"><thead><tr><th>Stop-the-world</th><th class="num">Count</th><th class="num">Total</th><th class="num">Longest</th><th class="num">Share of window</th></tr></thead><tbody>
    ${stw('GC', s.gc_stw, 'sweep and mark termination')}${stw('Other', s.other_stw, 'goroutine dumps, ReadMemStats, trace start …')}</tbody></table>
    <h3>Longest-blocked goroutines</h3>${lw.length ? `<table class="data waiting"><thead><tr><th class="num">Goroutine</th><th class="num">Waiting</th><th class="num">Running</th><th class="num">Blocks</th><th>Reason</th><th>Where (innermost first)</th></tr></thead><tbody>${
      lw.map((g) => `<tr><td class="num">${g.id}</td><td class="num">${fmtSec(g.waiting_seconds)}</td><td class="num">${g.ran ? fmtSec(g.running_seconds) : '<span class="muted" title="never ran in the window">never ran</span>'}</td><td class="num">${g.blocks}</td>
        <td>${esc(g.last_reason || (g.blocks ? '' : 'parked all window'))}</td><td>${(g.stack || []).slice(0, 3).map((f) => frameHTML(f)).join('')}</td></tr>`).join('')}</tbody></table>`
      : '<p class="muted">No goroutine waited in the window.</p>'}`;
  $('#trace').dataset.gcStw = String(s.gc_stw.count);
}
