/**
 * The admin page: one self-contained HTML document. The script fetches ./snapshot every two
 * seconds and renders it with DOM APIs only (textContent, never innerHTML), so data from
 * discovery (labels, error messages) cannot inject markup. The CSP in admin.ts allows exactly
 * this script (by hash) and nothing external.
 *
 * A service card is a header (balancer, discovery and breaker badges) and a list of sections
 * (SECTIONS in the script): summary counters, the last minute, routes (configured weights next
 * to the observed split), endpoints. A new part of the snapshot gets a section function there.
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
th { text-align:left; font-weight:600; color:var(--muted); font-size:11px; text-transform:uppercase; letter-spacing:.04em; padding:6px 7px; border-bottom:1px solid var(--line); }
td { padding:6px 7px; border-bottom:1px solid var(--line); vertical-align:middle; }
tr:last-child td { border-bottom:0; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
th, td.num, td code, td.ewma { white-space:nowrap; }
.ejections .meta { display:block; }
code { font:12px ui-monospace,SFMono-Regular,Menlo,monospace; }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:11px; font-weight:600; }
.healthy,.ready,.closed-cb { background:var(--okbg); color:var(--ok); }
.ejected,.failing,.open { background:var(--badbg); color:var(--bad); }
.draining,.starting,.half_open,.degraded { background:var(--warnbg); color:var(--warn); }
.unhealthy,.closed,.none { background:#e5e7eb; color:#374151; }
.lb { background:var(--infobg); color:var(--info); }
.bar { position:relative; height:8px; width:90px; background:#eef2ff; border-radius:4px; overflow:hidden; display:inline-block; vertical-align:middle; margin-right:8px; }
.bar > span { position:absolute; inset:0 auto 0 0; background:var(--bar); border-radius:4px; }
.bar.w > span { background:#94a3b8; }
.bar.o > span { background:#0ea5e9; }
.minute { display:flex; flex-wrap:wrap; gap:6px 22px; align-items:baseline; padding:8px 12px; margin:0 0 12px; background:#f8fafc; border:1px solid var(--line); border-radius:8px; }
.minute .title { font-size:11px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); font-weight:600; }
.minute .stat .k { color:var(--muted); font-size:12px; margin-right:6px; }
.minute .stat b { font-size:16px; font-variant-numeric:tabular-nums; }
.routes { margin:0 0 12px; }
.routes, .endpoints { overflow-x:auto; }
.ejections .reason { color:var(--bad); }
.labels code { background:#f3f4f6; border-radius:4px; padding:0 4px; margin-right:4px; }
.err { color:var(--bad); }
.meta { color:var(--muted); font-size:12px; }
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
  function kv(row, k, v, key) {
    var s = el('span'); s.appendChild(document.createTextNode(k + ' '));
    var b = el('b', '', v); if (key) b.setAttribute('data-k', key);
    s.appendChild(b); row.appendChild(s);
  }
  function ms(v) {
    if (v === undefined || v === null) return '-';
    if (v < 1) return '<1 ms';
    if (v < 1000) return (v < 10 ? v.toFixed(1) : Math.round(v)) + ' ms';
    return (v / 1000).toFixed(2) + ' s';
  }
  function pct(v) {
    if (v === undefined || v === null) return '-';
    var p = v * 100;
    return (p === 100 || p === 0 ? p.toFixed(0) : p >= 99 ? p.toFixed(2) : p.toFixed(1)) + '%';
  }
  function rate(v) { return v === undefined || v === null ? '-' : (v >= 10 ? Math.round(v) : v.toFixed(1)) + '/s'; }
  function th(tr, text, num) { tr.appendChild(el('th', num ? 'num' : '', text)); }
  function table(cols, numeric) {
    var t = el('table'); var thead = el('thead'); var tr = el('tr');
    cols.forEach(function (c) { th(tr, c, numeric.indexOf(c) >= 0); });
    thead.appendChild(tr); t.appendChild(thead);
    var tb = el('tbody'); t.appendChild(tb);
    return { table: t, body: tb };
  }
  // The badge of an endpoint: its state, unless it is "healthy" by discovery and outlier
  // detection while its recent attempts say otherwise.
  function health(e) {
    if (e.state !== 'healthy') return e.state;
    var m = e.lastMinute;
    if (!m || !m.requests) return 'healthy';
    if (m.successRate === 0 || m.consecutiveFailures >= 3) return 'failing';
    if (m.consecutiveFailures > 0 || (m.requests >= 5 && m.successRate < 0.95)) return 'degraded';
    return 'healthy';
  }
  function breakerBadge(s) {
    var cb = s.circuitBreaker;
    if (!cb) { var n = badge('no breaker', 'none'); n.title = 'trafficPolicy.circuitBreaker is not configured'; return n; }
    var b = badge('breaker ' + cb.state.replace('_', '-'), cb.state === 'closed' ? 'closed-cb' : cb.state);
    b.setAttribute('data-breaker', cb.state);
    return b;
  }

  // ── sections of a service card, in order: each takes (name, service snapshot) and returns an
  // element, or null when it has nothing to show. Add a section by adding a function here. ──

  function summary(name, s) {
    var row = el('div', 'row');
    kv(row, 'provider', s.discovery.provider);
    kv(row, 'endpoints', s.endpoints.length);
    kv(row, 'in flight', s.inflight);
    if (s.requests) kv(row, 'requests active', s.requests.active);
    kv(row, 'updates', s.discovery.updates);
    kv(row, 'errors', s.discovery.errors);
    kv(row, 'skipped', s.discovery.skipped);
    if (s.discovery.lastUpdateAt) kv(row, 'last update', new Date(s.discovery.lastUpdateAt).toLocaleTimeString());
    if (s.circuitBreaker) kv(row, 'rejected by the breaker', s.circuitBreaker.rejected, 'rejected');
    (s.circuitBreakers || []).forEach(function (b) {
      if (!b.endpoint) return;
      var w = el('span'); w.appendChild(document.createTextNode('breaker ' + b.endpoint + ' '));
      w.appendChild(badge(b.state, b.state === 'closed' ? 'closed-cb' : b.state)); row.appendChild(w);
    });
    if (s.outlierDetection) kv(row, 'outlier detection', s.outlierDetection.enabled ? 'on, ' + s.outlierDetection.ejectionsTotal + (s.outlierDetection.ejectionsTotal === 1 ? ' ejection' : ' ejections') : 'off');
    if (s.retryBudget) kv(row, 'retries refused by the budget', s.retryBudget.exhaustedCount);
    var frag = document.createDocumentFragment();
    frag.appendChild(row);
    if (s.discovery.lastError) frag.appendChild(el('div', 'row err', 'last discovery error: ' + s.discovery.lastError));
    return frag;
  }

  function lastMinute(name, s) {
    var m = s.lastMinute;
    var box = el('div', 'minute');
    box.setAttribute('data-section', 'last-minute');
    box.appendChild(el('span', 'title', m && m.seconds < 60 ? 'last ' + Math.round(m.seconds) + ' s' : 'last minute'));
    if (!m || !m.requests) { box.appendChild(el('span', 'empty', 'no requests')); return box; }
    [['requests', rate(m.rps), 'rps'], ['success', pct(m.successRate), 'success'], ['retries', m.retries, 'retries'],
     ['p50', ms(m.p50Ms), 'p50'], ['p99', ms(m.p99Ms), 'p99']].forEach(function (x) {
      var c = el('span', 'stat'); c.appendChild(el('span', 'k', x[0]));
      var v = el('b', x[2] === 'success' && m.successRate < 0.95 ? 'err' : '', x[1]); v.setAttribute('data-k', x[2]);
      c.appendChild(v); box.appendChild(c);
    });
    return box;
  }

  function routes(name, s) {
    if (!s.routes || !s.routes.length) return null;
    var t = table(['route', 'destination', 'configured', 'observed (last minute)'], []);
    s.routes.forEach(function (r) {
      var dests = r.destinations || [];
      var total = 0; var weights = 0;
      dests.forEach(function (d) { total += d.observed || 0; weights += d.weight === undefined ? 0 : d.weight; });
      dests.forEach(function (d, i) {
        var tr = el('tr'); tr.setAttribute('data-route', r.name); tr.setAttribute('data-destination', String(i));
        tr.appendChild(el('td', '', i === 0 ? r.name : ''));
        tr.appendChild(el('td', '', (d.host || name) + (d.subset ? ' / ' + d.subset : '')));
        var w = d.weight === undefined ? (dests.length === 1 ? 100 : 0) : d.weight;
        var share = weights > 0 ? w / weights : dests.length === 1 ? 1 : 0;
        var cw = el('td'); cw.appendChild(bar(share, 'w')); cw.appendChild(el('code', '', Math.round(share * 100) + '%'));
        cw.setAttribute('data-k', 'weight'); tr.appendChild(cw);
        var co = el('td'); co.setAttribute('data-k', 'observed');
        if (d.observed === undefined || total === 0) co.appendChild(el('span', 'empty', dests.length === 1 ? 'all' : 'no requests'));
        else { co.appendChild(bar(d.observed / total, 'o')); co.appendChild(el('code', '', Math.round((d.observed / total) * 100) + '% (' + d.observed + ')')); }
        tr.appendChild(co);
        t.body.appendChild(tr);
      });
    });
    var wrap = el('div', 'routes'); wrap.setAttribute('data-section', 'routes'); wrap.appendChild(t.table);
    return wrap;
  }

  function bar(share, kind) {
    var b = el('span', 'bar ' + kind); var fill = el('span');
    fill.style.width = Math.max(share > 0 ? 2 : 0, Math.round(share * 100)) + '%';
    b.appendChild(fill); return b;
  }

  function endpoints(name, s) {
    if (!s.endpoints.length) return el('div', 'empty', 'no endpoints');
    var max = 1;
    s.endpoints.forEach(function (e) { if (e.ewmaMs > max) max = e.ewmaMs; });
    var numeric = ['weight', 'in flight', 'req/s', 'success', 'p50', 'p99', 'attempts', '5xx', 'errors'];
    var t = table(['endpoint', 'health', 'zone', 'weight', 'in flight', 'req/s', 'success', 'p50', 'p99', 'attempts', '5xx', 'errors', 'peak EWMA', 'labels', 'ejections'], numeric);
    s.endpoints.forEach(function (e) {
      var r = el('tr'); r.setAttribute('data-endpoint', e.address);
      var a = el('td'); a.appendChild(el('code', '', e.address)); r.appendChild(a);
      var h = health(e);
      var st = el('td'); var hb = badge(h); hb.setAttribute('data-health', h); st.appendChild(hb);
      if (e.ejectedForMs) st.appendChild(el('span', 'meta', ' ' + Math.ceil(e.ejectedForMs / 1000) + ' s'));
      if (h === 'failing' || h === 'degraded') hb.title = 'discovery and outlier detection say healthy; its recent attempts do not';
      r.appendChild(st);
      r.appendChild(el('td', '', e.zone || '-'));
      r.appendChild(el('td', 'num', e.effectiveWeight !== e.weight ? e.effectiveWeight + ' / ' + e.weight : e.weight));
      r.appendChild(el('td', 'num', e.inflight));
      var m = e.lastMinute;
      r.appendChild(el('td', 'num', m ? rate(m.rps) : '-'));
      r.appendChild(el('td', 'num' + (m && m.successRate < 0.95 ? ' err' : ''), m ? pct(m.successRate) : '-'));
      r.appendChild(el('td', 'num', m ? ms(m.p50Ms) : '-'));
      r.appendChild(el('td', 'num', m ? ms(m.p99Ms) : '-'));
      r.appendChild(el('td', 'num', e.attempts));
      r.appendChild(el('td', 'num', e.responses5xx));
      r.appendChild(el('td', 'num', e.errors));
      var ew = el('td', 'ewma'); ew.appendChild(bar(e.ewmaMs / max, 'e')); ew.appendChild(el('code', '', e.ewmaMs.toFixed(1) + ' ms'));
      r.appendChild(ew);
      var lb = el('td', 'labels');
      Object.keys(e.labels || {}).forEach(function (k) { lb.appendChild(el('code', '', k + '=' + e.labels[k])); });
      r.appendChild(lb);
      var ej = el('td', 'ejections');
      if (e.ejections) {
        ej.appendChild(el('code', 'reason', e.ejections.lastReason));
        ej.appendChild(el('span', 'meta', '×' + e.ejections.count + ', last ' + new Date(e.ejections.lastAt).toLocaleTimeString()));
      } else ej.textContent = '-';
      r.appendChild(ej);
      t.body.appendChild(r);
    });
    var wrap = el('div', 'endpoints'); wrap.setAttribute('data-section', 'endpoints'); wrap.appendChild(t.table);
    return wrap;
  }

  var SECTIONS = [summary, lastMinute, routes, endpoints];

  function renderService(name, s) {
    var card = el('section', 'card');
    card.setAttribute('data-service', name);
    var h = el('h2'); h.appendChild(el('span', '', name));
    h.appendChild(badge(s.loadBalancer, 'lb'));
    h.appendChild(badge('discovery ' + s.discovery.state, s.discovery.state));
    h.appendChild(breakerBadge(s));
    card.appendChild(h);
    SECTIONS.forEach(function (section) {
      var part = section(name, s);
      if (part) card.appendChild(part);
    });
    return card;
  }
  function renderConfig(c) {
    var card = el('section', 'card');
    card.setAttribute('data-config', c.hash);
    card.appendChild(el('h2', '', 'config'));
    var row = el('div', 'row');
    kv(row, 'version', c.version); kv(row, 'hash', c.hash); kv(row, 'source', c.source);
    kv(row, 'applied', new Date(c.appliedAt).toLocaleTimeString());
    (c.sources || []).forEach(function (s) { var w = el('span'); w.appendChild(document.createTextNode(s.source + ' ')); w.appendChild(badge(s.state, s.state === 'watching' ? 'ready' : s.state === 'unavailable' ? 'degraded' : 'starting')); row.appendChild(w); });
    card.appendChild(row);
    if (c.lastRefused) card.appendChild(el('div', 'row err', 'last refused (' + c.lastRefused.source + ', ' + new Date(c.lastRefused.at).toLocaleTimeString() + '): ' + c.lastRefused.error));
    return card;
  }
  function render(snap) {
    document.getElementById('zone').textContent = snap.zone ? 'zone ' + snap.zone : 'no zone';
    document.getElementById('taken').textContent = 'snapshot ' + new Date(snap.takenAt).toLocaleTimeString() + (snap.closed ? ' (mesh closed)' : '');
    var main = document.getElementById('services');
    var names = Object.keys(snap.services).sort();
    var frag = document.createDocumentFragment();
    if (snap.config) frag.appendChild(renderConfig(snap.config));
    if (!names.length) frag.appendChild(el('div', 'card empty', 'no services configured'));
    names.forEach(function (n) { frag.appendChild(renderService(n, snap.services[n])); });
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
