//! The console's stylesheet and script, compiled in and served from
//! `/console/app.css` and `/console/app.js` (so the pages' Content Security
//! Policy can forbid every other origin and inline code).

/// The stylesheet: readable on a phone, state never shown by colour alone
/// (every state is also a word).
pub const CSS: &str = r#"
:root { --fg:#1b1b1b; --bg:#fff; --muted:#555; --line:#ccc; --accent:#0b57d0; --warn:#8a1c00; --ok:#0f5e1f; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; flex-wrap:wrap; gap:.5rem 1rem; align-items:center; padding:.5rem 1rem; border-bottom:1px solid var(--line); }
header nav a, header .who { margin-right:1rem; }
main { padding:1rem; max-width:72rem; margin:0 auto; }
a { color:var(--accent); }
a:focus, button:focus, input:focus, select:focus, textarea:focus { outline:3px solid #f5a623; outline-offset:1px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:.4rem .5rem; border-bottom:1px solid var(--line); vertical-align:top; }
.badge { display:inline-block; padding:0 .4rem; border:1px solid currentColor; border-radius:.3rem; font-weight:600; }
.sev-P1 { color:var(--warn); } .st-escalated, .st-held { color:var(--warn); } .st-acknowledged, .st-completed { color:var(--ok); }
.banner { padding:.6rem 1rem; margin:0 0 1rem; border:2px solid var(--warn); color:var(--warn); font-weight:600; }
.flash { padding:.6rem 1rem; margin:0 0 1rem; border:2px solid var(--accent); }
.muted { color:var(--muted); }
form.inline { display:inline; }
form.filters { display:flex; flex-wrap:wrap; gap:.5rem 1rem; align-items:end; margin-bottom:1rem; }
label { display:block; font-weight:600; }
input, select, textarea, button { font:inherit; padding:.35rem .5rem; }
button { cursor:pointer; border:1px solid var(--accent); background:var(--accent); color:#fff; border-radius:.3rem; min-height:2.5rem; }
.actions form { margin:.5rem 0; padding:.5rem; border:1px solid var(--line); }
.tabs a { margin-right:1rem; } .tabs a[aria-current] { font-weight:700; text-decoration:none; }
pre { white-space:pre-wrap; word-break:break-word; }
[hidden] { display:none !important; }
@media (max-width: 40rem) {
  table.rows thead { display:none; }
  table.rows tr { display:block; border-bottom:2px solid var(--line); padding:.4rem 0; }
  table.rows td { display:block; border:0; padding:.1rem 0; }
  table.rows td[data-label]::before { content: attr(data-label) ": "; font-weight:600; }
}
"#;

/// Live updates: re-fetch the rows when the server's stream nudges, poll
/// every 10 s while it is down and say so, and count deadlines down.
pub const JS: &str = r#"(function () {
  var rows = document.getElementById('rows'), banner = document.getElementById('stale');
  function tick() {
    var now = Date.now();
    document.querySelectorAll('[data-deadline]').forEach(function (el) {
      var s = Math.round((Date.parse(el.getAttribute('data-deadline')) - now) / 1000), a = Math.abs(s);
      var t = (a >= 3600 ? Math.floor(a / 3600) + 'h ' : '') + Math.floor(a % 3600 / 60) + 'm ' + (a % 60) + 's';
      el.textContent = s >= 0 ? 'in ' + t : 'due ' + t + ' ago';
    });
  }
  setInterval(tick, 1000); tick();
  if (!rows) return;
  function refresh() {
    fetch('/console/rows' + location.search, { credentials: 'same-origin' })
      .then(function (r) { if (!r.ok) throw r; return r.text(); })
      .then(function (html) { rows.innerHTML = html; tick(); })
      .catch(function () { banner.hidden = false; });
  }
  var poll = null;
  function down() { banner.hidden = false; if (!poll) poll = setInterval(refresh, 10000); }
  if (!window.EventSource) { down(); return; }
  var es = new EventSource('/console/stream');
  es.onopen = function () { banner.hidden = true; if (poll) { clearInterval(poll); poll = null; } refresh(); };
  es.onmessage = refresh;
  es.onerror = down;
})();
"#;
