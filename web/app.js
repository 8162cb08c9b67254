// The dashboard's entry point: runs list, hash routing, the toolbar (scheme toggles, metric,
// scale) and the page state. Served by lab-controller as a plain ES module (no build step).
//
// Routes: #/experiments/<id> one run; #/compare/<a>/<b> two runs side by side; anything
// else empty: the newest run (followed as new runs appear). The list refreshes every
// REFRESH_MS and when a shown run ends.
// Query: ?hide=raw,ewma hides schemes; ?metric=error|offset|correction; ?scale=auto|symlog|
// linear; ?max_points=N is passed to /samples (0 = every sample). The toolbar keeps
// hide/metric/scale in the URL.
//
// Test hooks (tests/e2e and bench/dashboard_bench.mjs rely on these; keep them stable):
//   document.body.dataset.state      'loading' | 'ready' | 'live' | 'error'
//   .chart[data-series-points]       "raw:123,ewma:120,...": points plotted per visible scheme
//                                    (.chart-curves: samples; .chart-histogram: samples binned)
//   table.stats tr[data-task][data-scheme] td[data-field]   statistics cells (run-view.js)
//   [data-histogram-mode]            'live' | 'final' | 'samples' (the histogram's caption)
//   [data-run-state]                 the run's state badge; nav a[data-run-id] the runs list
//   a[data-action=csv], button[data-action=png-curves|png-histogram], input[data-scheme]
//   performance.mark('run-loaded' | 'charts-drawn')  run JSON in / first full data drawn

import { api } from './api.js';
import { RunView } from './run-view.js';
import { DEFAULT_SCHEMES, el, fmtTime, schemeColor, schemeLabel, sortSchemes } from './format.js';

const REFRESH_MS = 5000;
const METRICS = ['error', 'offset', 'correction'];
const SCALES = ['auto', 'symlog', 'linear'];

const params = new URLSearchParams(location.search);
const settings = {
  hidden: new Set((params.get('hide') || '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)),
  metric: METRICS.includes(params.get('metric')) ? params.get('metric') : 'error',
  scale: SCALES.includes(params.get('scale')) ? params.get('scale') : 'auto',
  maxPoints: params.has('max_points') && params.get('max_points') !== '' ? Number(params.get('max_points')) : null,
};

const $ = (sel) => document.querySelector(sel);
const listBox = $('#runs');
const listStatus = $('#runs-status');
const main = $('#view');
const toggles = $('#scheme-toggles');

let runs = [];
let runsLoaded = false;
let views = [];
let routeKey = null;
let routeError = false;

function setBodyState() {
  const states = views.map((v) => v.state);
  let s = 'ready';
  if (routeError || states.includes('error')) s = 'error';
  else if (states.includes('loading')) s = 'loading';
  else if (states.includes('live')) s = 'live';
  document.body.dataset.state = s;
}

// ----- runs list -----

async function refreshRuns() {
  try {
    const res = await api.experiments();
    runs = res.experiments || [];
    runsLoaded = true;
    listStatus.textContent = '';
  } catch (err) {
    listStatus.textContent = `Runs list: ${err.message}`;
    return;
  }
  renderRuns();
  renderToggles();
  if (parseRoute().kind === 'default') showRoute(); // follows the newest run
}

function renderRuns() {
  const current = new Set(views.map((v) => v.id));
  if (runs.length === 0) {
    listBox.replaceChildren(el('li', { className: 'muted' }, 'No runs yet.'));
    return;
  }
  listBox.replaceChildren(...runs.map((r) => el('li', {},
    el('a', {
      href: `#/experiments/${encodeURIComponent(r.experiment_id)}`,
      attrs: current.has(r.experiment_id) ? { 'aria-current': 'page' } : {},
      dataset: { runId: r.experiment_id },
    },
    el('span', { className: 'run-id' }, r.experiment_id),
    el('span', { className: `badge badge-${r.state}` }, r.state),
    el('span', { className: 'run-sub' }, `${fmtTime(r.created_ns)} · ${(r.schemes || []).map(schemeLabel).join(', ')}`)))));
}

// ----- toolbar -----

function syncUrl() {
  const p = new URLSearchParams(location.search);
  p.delete('hide');
  p.delete('metric');
  p.delete('scale');
  const parts = p.toString() ? [p.toString()] : [];
  if (settings.hidden.size) parts.push(`hide=${[...settings.hidden].map(encodeURIComponent).join(',')}`);
  if (settings.metric !== 'error') parts.push(`metric=${settings.metric}`);
  if (settings.scale !== 'auto') parts.push(`scale=${settings.scale}`);
  history.replaceState(null, '', location.pathname + (parts.length ? '?' + parts.join('&') : '') + location.hash);
}

function renderToggles() {
  const shown = new Set(views.map((v) => v.id));
  const schemes = sortSchemes([
    ...DEFAULT_SCHEMES,
    ...runs.filter((r) => shown.has(r.experiment_id)).flatMap((r) => r.schemes || []),
    ...settings.hidden,
  ]);
  toggles.replaceChildren(...schemes.map((s) => {
    const box = el('input', {
      type: 'checkbox', checked: !settings.hidden.has(s), dataset: { scheme: s },
      onchange: (ev) => toggleScheme(s, ev.target.checked),
    });
    return el('label', { className: 'toggle', title: `show or hide ${schemeLabel(s)}` },
      box, el('span', { className: 'swatch', attrs: { style: `background:${schemeColor(s)}` } }), schemeLabel(s));
  }));
}

function toggleScheme(scheme, show) {
  if (show === !settings.hidden.has(scheme)) return;
  if (show) settings.hidden.delete(scheme);
  else settings.hidden.add(scheme);
  syncUrl();
  renderToggles();
  for (const v of views) v.setHidden(settings.hidden);
}

function initControls() {
  const metric = $('#metric');
  metric.value = settings.metric;
  metric.addEventListener('change', () => {
    settings.metric = metric.value;
    syncUrl();
    for (const v of views) v.setMetric(settings.metric);
  });
  const scale = $('#scale');
  scale.value = settings.scale;
  scale.addEventListener('change', () => {
    settings.scale = scale.value;
    syncUrl();
    for (const v of views) v.setScale();
  });
}

// ----- routing -----

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { kind: 'default' };
  if (parts[0] === 'experiments' && parts.length === 2) return { kind: 'run', ids: [parts[1]] };
  if (parts[0] === 'compare' && parts.length === 3) return { kind: 'compare', ids: [parts[1], parts[2]] };
  return { kind: 'unknown' };
}

async function showRoute() {
  const route = parseRoute();
  if (route.kind === 'default') {
    if (!runsLoaded) return; // refreshRuns() calls back when the list is in
    route.ids = runs.length ? [runs[0].experiment_id] : [];
  }
  const key = `${route.kind}:${(route.ids || []).join('/')}:${location.hash}`;
  if (key === routeKey) return;
  routeKey = key;
  for (const v of views) v.destroy();
  views = [];
  routeError = false;
  main.replaceChildren();

  if (route.kind === 'unknown') {
    routeError = true;
    main.append(el('div', { className: 'error-box', role: 'alert' },
      el('strong', {}, 'Unknown page: '), el('span', { className: 'error-message' }, location.hash),
      ' — use #/experiments/<id> or #/compare/<a>/<b>.'));
  } else if (route.ids.length === 0) {
    main.append(el('div', { className: 'empty' },
      el('p', {}, 'No runs yet. Start one:'),
      el('pre', {}, 'labctl run --clients raw,ewma,kalman,pid')));
  } else {
    const compact = route.kind === 'compare';
    const grid = el('div', { className: compact ? 'compare' : 'single' });
    main.append(grid);
    const ctx = {
      get hidden() { return settings.hidden; },
      get metric() { return settings.metric; },
      get scale() { return settings.scale; },
      get maxPoints() { return settings.maxPoints; },
      compact,
      runs: () => runs,
      onState: setBodyState,
      onToggle: toggleScheme,
      onEnded: () => refreshRuns(),
    };
    views = route.ids.map((id) => {
      const box = el('article', { attrs: { 'aria-label': `run ${id}` } });
      grid.append(box);
      return new RunView(box, id, ctx);
    });
    document.title = `${route.ids.join(' vs ')} · netlab`;
  }
  renderRuns();
  renderToggles();
  setBodyState();
  if (runsLoaded && views.some((v) => !runs.some((r) => r.experiment_id === v.id))) refreshRuns(); // a new run
  await Promise.all(views.map((v) => v.load()));
  setBodyState();
}

document.body.dataset.state = 'loading';
initControls();
renderToggles();
window.addEventListener('hashchange', showRoute);
showRoute();
refreshRuns();
setInterval(refreshRuns, REFRESH_MS);
