/**
 * The admin page: one self-contained HTML document. The script fetches ./snapshot every two
 * seconds and renders it with DOM APIs only (textContent, never innerHTML), so data from
 * discovery (labels, error messages) cannot inject markup. The CSP in admin.ts allows exactly
 * this script (by hash) and nothing external.
 */

const STYLE = `
:root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#6b7280; --line:#e5e7eb;
  --ok:#15803d; --okbg:#dcfce7; --warn:#b45309; --warnbg:#fef3c7; --bad:#b91c1c; --badbg:#fee2e2;
  --info:#1d4ed8; --infobg:#dbeafe; --bar:#6366f1; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; gap:16px; align-items:center; padding:12px 20px; background:#111827; color:#f9fafb; position:sticky; top:0; }
header h1 { font-size:16px; margin:0; font-weight:600; letter-spacing:.02em; }
header .meta { color:#9ca3af; font-size:12px; }
header .spacer { flex:1; }
header button { background:#374151; color:#f9fafb; border:0; border-radius:6px; padding:5px 10px; cursor:pointer; font:inherit; font-size:12px; }
main { padding:16px 20px; display:grid; gap:16px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
.card h2 { margin:0 0 6px; font-size:15px; display:flex; gap:8px; align-items:center; }
.row { display:flex; flex-wrap:wrap; gap:6px 14px; color:var(--muted); font-size:12px; margin-bottom:10px; }
.row b { color:var(--ink); font-weight:600; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th { text-align:left; font-weight:600; color:var(--muted); font-size:11px; text-transform:uppercase; letter-spacing:.04em; padding:6px 8px; border-bottom:1px solid var(--line); }
td { padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:middle; }
tr:last-child td { border-bottom:0; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
code { font:12px ui-monospace,SFMono-Regular,Menlo,monospace; }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:11px; font-weight:600; }
.healthy,.ready,.closed-cb { background:var(--okbg); color:var(--ok); }
.ejected,.degraded,.open { background:var(--badbg); color:var(--bad); }
.draining,.starting,.half_open { background:var(--warnbg); color:var(--warn); }
.unhealthy,.closed { background:#e5e7eb; color:#374151; }
.lb { background:var(--infobg); color:var(--info); }
.bar { position:relative; height:8px; width:140px; background:#eef2ff; border-radius:4px; overflow:hidden; display:inline-block; vertical-align:middle; margin-right:8px; }
.bar > span { position:absolute; inset:0 auto 0 0; background:var(--bar); border-radius:4px; }
.labels code { background:#f3f4f6; border-radius:4px; padding:0 4px; margin-right:4px; }
.err { color:var(--bad); }
.empty { color:var(--muted); font-style:italic; }
#status.err { color:#fca5a5; }
`;

export const ADMIN_SCRIPT = `
(function () {
  'use strict';
  var base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  var url = base + 'snapshot';
  var paused = false;
  var timer = null;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function badge(text, cls) { return el('span', 'badge ' + (cls || text), text); }
  function kv(row, k, v) {
    var s = el('span'); s.appendChild(document.createTextNode(k + ' '));
    s.appendChild(el('b', '', v)); row.appendChild(s);
  }
  function renderService(name, s) {
    var card = el('section', 'card');
    card.setAttribute('data-service', name);
    var h = el('h2'); h.appendChild(el('span', '', name));
    h.appendChild(badge(s.loadBalancer, 'lb'));
    h.appendChild(badge('discovery ' + s.discovery.state, s.discovery.state));
    card.appendChild(h);
    var row = el('div', 'row');
    kv(row, 'provider', s.discovery.provider);
    kv(row, 'endpoints', s.endpoints.length);
    kv(row, 'in flight', s.inflight);
    kv(row, 'updates', s.discovery.updates);
    kv(row, 'errors', s.discovery.errors);
    kv(row, 'skipped', s.discovery.skipped);
    if (s.discovery.lastUpdateAt) kv(row, 'last update', new Date(s.discovery.lastUpdateAt).toLocaleTimeString());
    (s.circuitBreakers || []).forEach(function (b) {
      var w = el('span'); w.appendChild(document.createTextNode('breaker' + (b.endpoint ? ' ' + b.endpoint : '') + ' '));
      w.appendChild(badge(b.state, b.state === 'closed' ? 'closed-cb' : b.state)); row.appendChild(w);
    });
    if (s.retryBudget) kv(row, 'retries refused by the budget', s.retryBudget.exhaustedCount);
    if (s.routes) kv(row, 'routes', s.routes.length);
    card.appendChild(row);
    if (s.discovery.lastError) card.appendChild(el('div', 'row err', 'last discovery error: ' + s.discovery.lastError));
    if (!s.endpoints.length) { card.appendChild(el('div', 'empty', 'no endpoints')); return card; }
    var max = 1;
    s.endpoints.forEach(function (e) { if (e.ewmaMs > max) max = e.ewmaMs; });
    var t = el('table'); var thead = el('thead'); var tr = el('tr');
    ['endpoint', 'state', 'zone', 'weight', 'in flight', 'attempts', '5xx', 'errors', 'peak EWMA', 'labels', 'ejections'].forEach(function (c) { tr.appendChild(el('th', ['weight', 'in flight', 'attempts', '5xx', 'errors'].indexOf(c) >= 0 ? 'num' : '', c)); });
    thead.appendChild(tr); t.appendChild(thead);
    var tb = el('tbody');
    s.endpoints.forEach(function (e) {
      var r = el('tr'); r.setAttribute('data-endpoint', e.address);
      var a = el('td'); a.appendChild(el('code', '', e.address)); r.appendChild(a);
      var st = el('td'); st.appendChild(badge(e.state));
      if (e.ejectedForMs) st.appendChild(el('span', 'meta', ' ' + Math.ceil(e.ejectedForMs / 1000) + ' s'));
      r.appendChild(st);
      r.appendChild(el('td', '', e.zone || '-'));
      r.appendChild(el('td', 'num', e.effectiveWeight !== e.weight ? e.effectiveWeight + ' / ' + e.weight : e.weight));
      r.appendChild(el('td', 'num', e.inflight));
      r.appendChild(el('td', 'num', e.attempts));
      r.appendChild(el('td', 'num', e.responses5xx));
      r.appendChild(el('td', 'num', e.errors));
      var ew = el('td'); var bar = el('span', 'bar'); var fill = el('span');
      fill.style.width = Math.max(2, Math.round((e.ewmaMs / max) * 100)) + '%';
      bar.appendChild(fill); ew.appendChild(bar); ew.appendChild(el('code', '', e.ewmaMs.toFixed(1) + ' ms'));
      r.appendChild(ew);
      var lb = el('td', 'labels');
      Object.keys(e.labels || {}).forEach(function (k) { lb.appendChild(el('code', '', k + '=' + e.labels[k])); });
      r.appendChild(lb);
      r.appendChild(el('td', '', e.ejections ? e.ejections.count + ' (' + e.ejections.lastReason + ')' : '-'));
      tb.appendChild(r);
    });
    t.appendChild(tb); card.appendChild(t);
    return card;
  }
  // Rate limits (docs/rate-limits.md): the store, every policy and plan limit, usage per application.
  function table(headers, rows, numeric) {
    var t = el('table'); var thead = el('thead'); var tr = el('tr');
    headers.forEach(function (c, i) { tr.appendChild(el('th', numeric.indexOf(i) >= 0 ? 'num' : '', c)); });
    thead.appendChild(tr); t.appendChild(thead);
    var tb = el('tbody');
    rows.forEach(function (r) {
      var row = el('tr');
      r.forEach(function (v, i) { row.appendChild(el('td', numeric.indexOf(i) >= 0 ? 'num' : '', v)); });
      tb.appendChild(row);
    });
    t.appendChild(tb); return t;
  }
  function renderRateLimits(rl) {
    var card = el('section', 'card');
    card.setAttribute('data-ratelimits', 'true');
    var h = el('h2'); h.appendChild(el('span', '', 'rate limits' + (rl.domain ? ' · ' + rl.domain : '')));
    var st = rl.store;
    h.appendChild(badge(st.kind + (st.mode !== st.kind ? ' ' + st.mode : ''), 'lb'));
    h.appendChild(badge(st.state, st.state === 'fallback' ? 'degraded' : st.state === 'connecting' ? 'starting' : 'ready'));
    card.appendChild(h);
    var row = el('div', 'row');
    if (st.url) kv(row, 'store', st.url);
    if (st.onFailure) kv(row, 'on failure', st.onFailure);
    kv(row, 'processes', st.replicas);
    kv(row, 'counters', st.counters);
    if (st.calls !== undefined) { kv(row, 'calls', st.calls); kv(row, 'errors', st.errors); kv(row, 'timeouts', st.timeouts); kv(row, 'decided without the store', st.fallbackDecisions); }
    if (st.breaker) kv(row, 'breaker', st.breaker);
    card.appendChild(row);
    if (st.lastError) card.appendChild(el('div', 'row err', 'last store error: ' + st.lastError));
    var refused = [];
    Object.keys(rl.refusals || {}).forEach(function (scope) {
      var r = rl.refusals[scope];
      Object.keys(r).forEach(function (k) { if (r[k]) refused.push(scope + ' ' + k + ' ' + r[k]); });
    });
    if (refused.length) card.appendChild(el('div', 'row', 'refused: ' + refused.join(' · ')));
    card.appendChild(table(['scope', 'policy / plan limit', 'limits', 'admitted', 'refused', 'shadow refused'],
      (rl.policies || []).map(function (p) {
        return [p.scope, p.name + (p.shadow ? ' (shadow)' : ''), p.limits.map(function (l) { return l.requests + ' per ' + l.per + (l.burst ? ' (burst ' + l.burst + ')' : ''); }).join(', '), p.admitted, p.refused, p.shadowRefused];
      }), [3, 4, 5]));
    var usage = rl.usage || [];
    if (!usage.length) { card.appendChild(el('div', 'empty', 'no usage yet')); return card; }
    var ut = table(['scope', 'application', 'plan', 'metric', 'minute', 'hour', 'day', 'month', 'all processes today', 'all processes this month', 'refused'],
      usage.map(function (u) {
        return [u.scope, u.application, u.plan || '-', u.metric, u.used.minute, u.used.hour, u.used.day, u.used.month, u.total ? u.total.day : '-', u.total ? u.total.month : '-', u.refused];
      }), [4, 5, 6, 7, 8, 9, 10]);
    ut.setAttribute('data-usage', 'true');
    card.appendChild(ut);
    return card;
  }
  function render(snap) {
    document.getElementById('zone').textContent = snap.zone ? 'zone ' + snap.zone : 'no zone';
    document.getElementById('taken').textContent = 'snapshot ' + new Date(snap.takenAt).toLocaleTimeString() + (snap.closed ? ' (mesh closed)' : '');
    var main = document.getElementById('services');
    var names = Object.keys(snap.services).sort();
    var frag = document.createDocumentFragment();
    if (!names.length) frag.appendChild(el('div', 'card empty', 'no services configured'));
    names.forEach(function (n) { frag.appendChild(renderService(n, snap.services[n])); });
    if (snap.rateLimits) frag.appendChild(renderRateLimits(snap.rateLimits));
    main.replaceChildren(frag);
    document.body.setAttribute('data-ready', 'true');
  }
  function status(text, bad) { var s = document.getElementById('status'); s.textContent = text; s.className = 'meta' + (bad ? ' err' : ''); }
  function tick() {
    var ctrl = new AbortController();
    var bound = setTimeout(function () { ctrl.abort(); }, 5000);
    fetch(url, { cache: 'no-store', signal: ctrl.signal })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(function (snap) { render(snap); status('live', false); })
      .catch(function (err) { status('snapshot failed: ' + err.message, true); })
      .finally(function () { clearTimeout(bound); if (!paused) timer = setTimeout(tick, 2000); });
  }
  document.getElementById('pause').addEventListener('click', function (ev) {
    paused = !paused; ev.target.textContent = paused ? 'resume' : 'pause';
    if (paused) clearTimeout(timer); else tick();
  });
  tick();
})();
`;

export function adminPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meshwork admin</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header><h1>meshwork</h1><span class="meta" id="zone"></span><span class="meta" id="taken"></span>
<span class="spacer"></span><span class="meta" id="status">loading…</span><button id="pause" type="button">pause</button></header>
<main id="services"><div class="card empty">loading snapshot…</div></main>
<script>${ADMIN_SCRIPT}</script>
</body>
</html>
`;
}
