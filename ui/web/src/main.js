// Entry point: the server renders one template per page and names it in
// <body data-page>; this picks the script for it.
import { $, showError } from './util.js';
import { fleetPage } from './fleet.js';
import { instancePage } from './instance.js';
import { findingPage } from './finding.js';
import { bundlePage } from './bundle.js';

const pages = { fleet: fleetPage, instance: instancePage, finding: findingPage, bundle: bundlePage };

function themeToggle() {
  const btn = $('#theme');
  if (!btn) return;
  btn.addEventListener('click', () => {
    const next = document.documentElement.getAttribute('data-theme') === 'dark' ? 'light' : 'dark';
    document.documentElement.setAttribute('data-theme', next);
    try { localStorage.setItem('gopulse-theme', next); } catch (e) { /* private mode */ }
    window.dispatchEvent(new Event('themechange'));
  });
}

async function main() {
  themeToggle();
  const fn = pages[document.body.dataset.page];
  if (!fn) return;
  try {
    await fn();
    // Milliseconds since navigation start: what the e2e speed test reads.
    document.body.dataset.readyAt = String(Math.round(performance.now()));
    document.body.dataset.ready = 'true';
  } catch (e) {
    showError(e.message || String(e));
    document.body.dataset.ready = 'error';
  }
}

main();
