// Runs in <head> before first paint so a dark-theme user never sees a
// white flash. The choice is stored per browser; "auto" follows the OS.
(function () {
  var t = null;
  try { t = localStorage.getItem('gopulse-theme'); } catch (e) {}
  if (t !== 'light' && t !== 'dark') {
    t = window.matchMedia && matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
  }
  document.documentElement.setAttribute('data-theme', t);
})();
