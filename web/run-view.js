// One run on the page: header (state, times, spec, CSV / PNG / compare controls), the curves
// of every client over time, the error histograms and the statistics table. Used once for
// #/experiments/<id> and twice, side by side, for #/compare/<a>/<b>.
//
// A finished run: GET /experiments/{id} (summary, histograms, error edges) and /samples
// (keep = the selected metric). A running run: the same GET, then an EventSource on /events,
// whose first `samples` event carries what is stored so far; new samples are appended to
// the curves and binned into the live histograms at most every FLUSH_MS (longer when a draw
// is slow, so drawing takes at most ~20 % of the time); `end` refetches the
// run for its final summary and histograms and closes the stream.
//
// view.state is 'loading' | 'ready' | 'live' | 'error'; ctx.onState(view) is called when it
// changes. performance.mark('charts-drawn') is set once the first full data set is drawn.

import { api } from './api.js';
import { CurveChart, HistogramChart } from './charts.js';
import { TrafficView } from './traffic-view.js';
import { DASH, el, fmtDuration, fmtNum, fmtTime, schemeColor, schemeLabel } from './format.js';

const FLUSH_MS = 250;
// Last resort when the API gives no edges (none expected: GET /experiments/{id} carries
// error_edges_us): the error edges of dataplane/timesync/histogram.h, as documented.
const FALLBACK_EDGES = [
  -50000, -20000, -10000, -5000, -2000, -1000, -500, -200, -100, -50, -20, -10, -5, -2, -1,
  -0.5, -0.2, -0.1, 0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
  10000, 20000, 50000,
];
const COLUMN_OF = { error: 'error_us', offset: 'offset_us', correction: 'correction_us' };
const METRIC_TITLE = { error: 'Residual error', offset: 'Measured offset', correction: 'Applied correction' };

function badge(state) {
  return el('span', { className: `badge badge-${state}`, dataset: { runState: state } }, state);
}

// Per-task samples held by the page (plain arrays, appended in seq order).
function emptyTask(task) {
  return { ...task, seq: [], t: [], error: [], offset: [], correction: [] };
}

function pushSamples(td, s, from = 0) {
  const n = s.seq.length;
  for (let i = from; i < n; i++) {
    td.seq.push(s.seq[i]);
    td.t.push(s.t_s[i]);
    td.error.push(s.error_us ? s.error_us[i] : null);
    td.offset.push(s.offset_us ? s.offset_us[i] : null);
    td.correction.push(s.correction_us ? s.correction_us[i] : null);
  }
}

export class RunView {
  // ctx: {hidden: Set, metric, scale, maxPoints, compact, onState(view), onEnded(view),
  //       onToggle(scheme, show), runs(): the current runs list (for the compare menu)}
  constructor(root, id, ctx) {
    this.root = root;
    this.id = id;
    this.ctx = ctx;
    this.state = 'loading';
    this.abort = new AbortController();
    this.es = null;
    this.curves = null;
    this.hist = null;
    this.data = new Map(); // task_id -> emptyTask()
    this.progress = new Map(); // task_id -> progress event entry
    this.pending = null; // {curve: Map, errors: Map} waiting for the next flush
    this.flushTimer = 0;
    this.lastFlush = 0;
    this.flushEvery = FLUSH_MS;
    this.metricRequest = 0;
    this.marked = false;
    this.root.classList.add('run-view');
    this.root.setAttribute('aria-busy', 'true');
    this.root.append(el('p', { className: 'muted' }, `Loading ${id}…`));
  }

  _setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.root.dataset.state = s;
    this.root.setAttribute('aria-busy', s === 'loading' ? 'true' : 'false');
    this.ctx.onState(this);
  }

  _fail(err) {
    if (err && err.name === 'AbortError') return;
    this._closeStream();
    this.root.replaceChildren(
      el('div', { className: 'error-box', role: 'alert' },
        el('strong', {}, err.code ? `Error ${err.code}${err.status ? ' ' + err.status : ''}: ` : 'Error: '),
        el('span', { className: 'error-message' }, err.message)));
    this._setState('error');
  }

  async load() {
    try {
      this.exp = await api.experiment(this.id, { signal: this.abort.signal });
      if (this.abort.signal.aborted) return; // destroyed meanwhile
      performance.mark('run-loaded');
      const kind = this.exp.experiment.kind;
      if (kind === 'tcp' || kind === 'udp') {
        this.traffic = new TrafficView(this.root, this.id, this.exp, {
          onState: (s) => this._setState(s),
          onEnded: () => this.ctx.onEnded(this),
          onError: (err) => this._fail(err),
          signal: this.abort.signal,
        });
        await this.traffic.start();
        return;
      }
      this._initTasks();
      this._render();
      if (this.exp.experiment.state === 'running') {
        this._openStream();
      } else {
        await this._loadSamples();
        this._showFinal();
        await this._drawnMark();
        this._setState('ready');
      }
    } catch (err) {
      this._fail(err);
    }
  }

  _initTasks() {
    const exp = this.exp;
    let tasks = (exp.tasks || []).filter((t) => t.role === 'client');
    if (tasks.length === 0 && exp.summary && exp.summary.clients) tasks = exp.summary.clients;
    tasks = tasks
      .map((t) => ({ task_id: t.task_id, scheme: t.scheme, agent: t.agent }))
      .sort((a, b) => a.task_id.localeCompare(b.task_id));
    this.tasks = tasks;
    for (const t of tasks) this.data.set(t.task_id, emptyTask(t));
    const hists = exp.histograms || {};
    const anyHist = Object.values(hists)[0];
    this.edges = exp.error_edges_us || (anyHist && anyHist.edges_us) || FALLBACK_EDGES;
  }

  // ----- rendering -----

  _render() {
    const e = this.exp.experiment;
    const ctx = this.ctx;
    this.badgeSlot = el('span', {}, badge(e.state));
    this.metaSlot = el('span', { className: 'meta' });
    const compare = el('select', { className: 'compare-select', attrs: { 'aria-label': 'Compare with another run' } });
    const fillCompare = () => {
      const cur = compare.value;
      compare.replaceChildren(el('option', { value: '' }, 'compare with…'),
        ...ctx.runs().filter((r) => r.experiment_id !== this.id)
          .map((r) => el('option', { value: r.experiment_id }, `${r.experiment_id} (${r.state})`)));
      compare.value = cur;
    };
    fillCompare();
    compare.addEventListener('focus', fillCompare);
    compare.addEventListener('mousedown', fillCompare);
    compare.addEventListener('change', () => {
      if (compare.value) location.hash = `#/compare/${encodeURIComponent(this.id)}/${encodeURIComponent(compare.value)}`;
    });
    const csv = el('a', {
      className: 'button', href: api.csvUrl(this.id), download: `${this.id}.csv`,
      dataset: { action: 'csv' }, attrs: { 'aria-label': `Download every sample of ${this.id} as CSV` },
    }, 'CSV');

    this.curvesBox = el('div', { className: 'chart chart-curves', attrs: { role: 'img', 'aria-label': 'curves over time per scheme' } });
    this.histBox = el('div', { className: 'chart chart-histogram', attrs: { role: 'img', 'aria-label': 'error histograms per scheme' } });
    this.curvesTitle = el('h3', {});
    this.curvesNote = el('span', { className: 'caption' });
    this.histCaption = el('span', { className: 'caption', dataset: { histogramMode: '' } });
    this.streamNote = el('span', { className: 'caption stream-note', attrs: { 'aria-live': 'polite' } });
    this.table = el('table', { className: 'stats' });
    const pngButton = (chart, name) => el('button', {
      type: 'button', className: 'button', dataset: { action: `png-${name}` },
      attrs: { 'aria-label': `Download the ${name} chart as PNG` },
      onclick: () => this[chart] && this[chart].exportPng(`${this.id}-${name}.png`),
    }, 'PNG');

    const title = el('h2', {},
      ctx.compact ? el('a', { href: `#/experiments/${encodeURIComponent(this.id)}` }, this.id) : this.id);
    this.root.replaceChildren(
      el('header', { className: 'run-header' },
        el('div', { className: 'run-title' }, title, this.badgeSlot, this.streamNote),
        el('div', { className: 'run-actions' }, csv, compare),
        this.metaSlot,
        el('details', { className: 'spec' }, el('summary', {}, 'spec'),
          el('pre', {}, JSON.stringify(this.exp.spec ?? {}, null, 2)))),
      el('section', { className: 'panel' },
        el('div', { className: 'panel-head' }, this.curvesTitle, this.curvesNote, pngButton('curves', 'curves')),
        this.curvesBox),
      el('div', { className: ctx.compact ? 'split stacked' : 'split' },
        el('section', { className: 'panel' },
          el('div', { className: 'panel-head' }, el('h3', {}, 'Error distribution'), this.histCaption, pngButton('hist', 'histogram')),
          this.histBox),
        el('section', { className: 'panel panel-table' },
          el('div', { className: 'panel-head' }, el('h3', {}, 'Statistics per client'), el('span', { className: 'caption' }, 'µs, after convergence')),
          el('div', { className: 'table-wrap' }, this.table))));
    this._renderMeta();
    this._setCurvesTitle();

    this._makeCharts();
    this._renderTable();
  }

  _makeCharts() {
    const ctx = this.ctx;
    if (this.curves) this.curves.destroy();
    if (this.hist) this.hist.destroy();
    this.curvesBox.replaceChildren();
    this.histBox.replaceChildren();
    const onToggle = (scheme, show) => ctx.onToggle(scheme, show);
    this.curves = new CurveChart(this.curvesBox, {
      title: `${this.id}: ${METRIC_TITLE[ctx.metric].toLowerCase()} (µs)`, tasks: this.tasks,
      hidden: ctx.hidden, metric: ctx.metric, scale: this._scaleFor(ctx.metric), onToggle,
      height: ctx.compact ? 240 : 300,
    });
    this.hist = new HistogramChart(this.histBox, {
      title: `${this.id}: error histogram`, tasks: this.tasks, hidden: ctx.hidden,
      edges: this.edges, onToggle, height: ctx.compact ? 200 : 230,
    });
  }

  // Client tasks the first GET did not list yet (a run that had just started): added, and
  // the charts rebuilt with everything received so far.
  _addTasks(list) {
    let added = false;
    for (const t of list) {
      if (this.data.has(t.task_id) || (t.role && t.role !== 'client')) continue;
      const task = { task_id: t.task_id, scheme: t.scheme, agent: t.agent };
      this.tasks.push(task);
      this.data.set(t.task_id, emptyTask(task));
      added = true;
    }
    if (!added) return;
    this.tasks.sort((a, b) => a.task_id.localeCompare(b.task_id));
    this.pending = null; // everything is in this.data; redrawn from there
    clearTimeout(this.flushTimer);
    this.flushTimer = 0;
    this._makeCharts();
    this._drawCurves(this.ctx.metric);
    this._binAll();
    this._renderMeta();
    this._renderTable();
  }

  _scaleFor(metric) {
    const s = this.ctx.scale;
    return s === 'auto' || !s ? (metric === 'error' ? 'symlog' : 'linear') : s;
  }

  _setCurvesTitle() {
    this.curvesTitle.textContent = `${METRIC_TITLE[this.ctx.metric]} over time (µs)`;
  }

  _renderMeta() {
    const e = this.exp.experiment;
    this.badgeSlot.replaceChildren(badge(e.state));
    const parts = [`created ${fmtTime(e.created_ns)}`];
    if (e.finished_ns) parts.push(`took ${fmtDuration(e.created_ns, e.finished_ns)}`);
    parts.push(`${this.tasks.length} client${this.tasks.length === 1 ? '' : 's'}`);
    if (e.name) parts.unshift(e.name);
    this.metaSlot.textContent = parts.join(' · ');
  }

  _clients() {
    const summary = this.exp.summary && this.exp.summary.clients ? this.exp.summary.clients : [];
    const byId = new Map(summary.map((c) => [c.task_id, c]));
    const taskState = new Map((this.exp.tasks || []).map((t) => [t.task_id, t]));
    return this.tasks.map((t) => {
      const s = byId.get(t.task_id) || {};
      const p = this.progress.get(t.task_id) || {};
      const ts = taskState.get(t.task_id) || {};
      return { ...t, ...s, state: s.state || p.state || ts.state || DASH, agent: s.agent || t.agent || p.agent };
    });
  }

  _renderTable() {
    const head = [
      ['scheme', 'scheme'], ['agent', 'agent'], ['state', 'state'], ['progress', 'progress'],
      ['abs_p50', '|err| p50', 'median |error| after convergence, µs'],
      ['abs_p95', 'p95', '95th percentile of |error| after convergence, µs'],
      ['abs_p99', 'p99', '99th percentile of |error| after convergence, µs'],
      ['rms', 'RMS', 'root mean square error after convergence, µs'],
      ['converged_after_ms', 'conv. (ms)', 'time to convergence, ms'],
      ['loss', 'lost/sent'], ['timestamping', 'stamps', 'timestamp source'], ['truth_known', 'truth', 'truth known'],
    ];
    const withProgress = this.progress.size > 0;
    const cols = head.filter(([f]) => f !== 'progress' || withProgress);
    const rows = this._clients().map((c) => {
      const err = c.error_us || {};
      const hidden = this.ctx.hidden.has(c.scheme);
      const td = (field, content, cls) => el('td', { dataset: { field }, className: cls }, content);
      let conv = DASH;
      if (c.converged === true) conv = fmtNum(c.converged_after_ms);
      else if (c.converged === false) conv = 'not converged';
      let loss = DASH;
      if (typeof c.sent === 'number') {
        const lost = typeof c.lost === 'number' ? c.lost : c.sent - (c.received || 0);
        loss = `${lost}/${c.sent} (${c.sent > 0 ? ((100 * lost) / c.sent).toFixed(2) : '0.00'}%)`;
      }
      const truth = c.truth_known === true ? 'yes' : c.truth_known === false ? 'no' : DASH;
      return el('tr', { dataset: { task: c.task_id, scheme: c.scheme }, className: hidden ? 'row-hidden' : '',
        attrs: hidden ? { 'aria-disabled': 'true' } : {} },
        td('scheme', [el('span', { className: 'swatch', attrs: { style: `background:${schemeColor(c.scheme)}` } }), schemeLabel(c.scheme)], 'scheme'),
        td('agent', c.agent || DASH),
        td('state', c.state),
        withProgress && td('progress', this._progressCell(c.task_id)),
        td('abs_p50', fmtNum(err.abs_p50), 'num'),
        td('abs_p95', fmtNum(err.abs_p95), 'num'),
        td('abs_p99', fmtNum(err.abs_p99), 'num'),
        td('rms', fmtNum(err.rms), 'num'),
        td('converged_after_ms', conv, 'num'),
        td('loss', loss, 'num'),
        td('timestamping', c.timestamping || DASH),
        td('truth_known', truth));
    });
    this.table.replaceChildren(
      el('caption', { className: 'sr-only' }, `Statistics per client of ${this.id}`),
      el('thead', {}, el('tr', {}, cols.map(([f, label, title]) =>
        el('th', { scope: 'col', dataset: { field: f }, title, attrs: title ? { 'aria-label': title } : {} }, label)))),
      el('tbody', {}, rows));
  }

  _progressCell(taskId) {
    const p = this.progress.get(taskId);
    if (!p || !p.total) return DASH;
    const value = Math.min(p.progress, p.total);
    return [
      el('progress', { max: p.total, value, attrs: { 'aria-label': `${taskId}: ${value} of ${p.total} samples` } }),
      el('span', { className: 'progress-text' }, ` ${value}/${p.total}`),
    ];
  }

  _updateProgressCells() {
    if (!this.table.querySelector('th[data-field="progress"]')) this._renderTable();
    for (const tr of this.table.querySelectorAll('tbody tr')) {
      const id = tr.dataset.task;
      const p = this.progress.get(id);
      if (!p) continue;
      tr.querySelector('td[data-field="progress"]').replaceChildren(...[this._progressCell(id)].flat());
      if (p.state) tr.querySelector('td[data-field="state"]').textContent = p.state;
    }
  }

  // ----- data -----

  // Fetches /samples for the current metric; false when a newer request superseded it.
  async _loadSamples() {
    const req = this.metricRequest;
    const metric = this.ctx.metric;
    const res = await api.samples(this.id, { maxPoints: this.ctx.maxPoints, keep: metric }, { signal: this.abort.signal });
    if (req !== this.metricRequest || !this.curves || this.abort.signal.aborted) return false;
    const fresh = new Map();
    for (const t of this.tasks) fresh.set(t.task_id, emptyTask(t));
    for (const s of res.tasks || []) {
      let td = fresh.get(s.task_id);
      if (!td) continue; // not a client task we know
      pushSamples(td, s);
    }
    // Carry over what the live stream delivered after the response's last sample.
    for (const [id, td] of fresh) {
      const old = this.data.get(id);
      if (!old) continue;
      const last = td.seq.length ? td.seq[td.seq.length - 1] : -1;
      let i = old.seq.length;
      while (i > 0 && old.seq[i - 1] > last) i--;
      for (; i < old.seq.length; i++) {
        for (const k of ['seq', 't', 'error', 'offset', 'correction']) td[k].push(old[k][i]);
      }
    }
    this.data = fresh;
    // Samples waiting for a flush are in `fresh` already: bin them, drop them from the curves.
    if (this.pending) this.hist.addValues(this.pending.errors);
    this.pending = null;
    clearTimeout(this.flushTimer);
    this.flushTimer = 0;
    this.downsampled = !!res.downsampled;
    this.stored = new Map((res.tasks || []).map((s) => [s.task_id, s]));
    this._drawCurves(metric);
    return true;
  }

  _drawCurves(metric) {
    const cols = new Map();
    for (const [id, td] of this.data) cols.set(id, { t: td.t, y: td[metric] });
    this.curves.setColumns(metric, cols);
    let note = '';
    if (this.downsampled && this.stored) {
      const parts = [...this.stored.values()].map((s) => s.stored > s.points ? `${s.points} of ${s.stored}` : null).filter(Boolean);
      note = `downsampled (extremes of ${metric} kept): ${[...new Set(parts)].join(', ')} points per client`;
    }
    this.curvesNote.textContent = note;
  }

  _showFinal() {
    const hists = this.exp.histograms || {};
    if (Object.keys(hists).length > 0) {
      const counts = new Map(Object.entries(hists).map(([id, h]) => [id, h.counts]));
      this.hist.setCounts(counts);
      this._setHistCaption('final', 'final: after convergence');
    } else {
      this._binAll();
      this._setHistCaption('samples', 'no final histograms: all samples shown');
    }
  }

  _binAll() {
    this.hist.setCounts(new Map());
    const values = new Map();
    for (const [id, td] of this.data) values.set(id, td.error);
    this.hist.addValues(values);
  }

  _setHistCaption(mode, text) {
    this.histCaption.dataset.histogramMode = mode;
    this.histCaption.textContent = text;
  }

  // uPlot draws in a microtask after setData; a timer runs after every pending microtask.
  async _drawnMark() {
    if (this.marked) return;
    this.marked = true;
    await new Promise((resolve) => setTimeout(resolve, 0));
    performance.mark('charts-drawn');
  }

  // ----- live -----

  _openStream() {
    this._setHistCaption('live', 'live: all samples so far');
    this._setState('live');
    const es = new EventSource(api.eventsUrl(this.id));
    this.es = es;
    es.addEventListener('open', () => { this.streamNote.textContent = 'live'; });
    es.addEventListener('progress', (ev) => {
      const msg = JSON.parse(ev.data);
      this._addTasks(msg.tasks || []);
      for (const t of msg.tasks || []) this.progress.set(t.task_id, t);
      this._updateProgressCells();
    });
    es.addEventListener('samples', (ev) => this._onSamples(JSON.parse(ev.data)));
    es.addEventListener('end', (ev) => {
      const msg = ev.data ? JSON.parse(ev.data) : {};
      this._closeStream();
      this._onEnd(msg.state);
    });
    // The server's own failure (the store failed): say why and stop; EventSource would
    // otherwise reconnect into the same failure.
    es.addEventListener('failure', (ev) => {
      let message = 'the live stream failed';
      try { message = JSON.parse(ev.data).message || message; } catch { /* keep the default */ }
      this._closeStream();
      this._fail(new Error(message));
    });
    es.addEventListener('error', () => {
      if (!this.es) return;
      if (es.readyState === EventSource.CLOSED) this._fail(new Error('the live stream closed before the run ended; reload to retry'));
      else this.streamNote.textContent = 'reconnecting…';
    });
  }

  _onSamples(msg) {
    this.streamNote.textContent = 'live';
    if ((msg.tasks || []).some((s) => s.downsampled)) {
      // Joined a big run mid-way: the history came thinned to its extremes.
      this._setHistCaption('live', 'live: samples so far (earlier ones thinned to their extremes)');
    }
    this._addTasks(msg.tasks || []);
    if (!this.pending) this.pending = { curve: new Map(), errors: new Map() };
    const metric = this.ctx.metric;
    for (const s of msg.tasks || []) {
      const td = this.data.get(s.task_id);
      if (!td) continue;
      const last = td.seq.length ? td.seq[td.seq.length - 1] : -1;
      let from = 0;
      while (from < s.seq.length && s.seq[from] <= last) from++; // repeats after a reconnect
      if (from >= s.seq.length) continue;
      const before = td.seq.length;
      pushSamples(td, s, from);
      let c = this.pending.curve.get(s.task_id);
      if (!c) this.pending.curve.set(s.task_id, (c = { t: [], y: [] }));
      let e = this.pending.errors.get(s.task_id);
      if (!e) this.pending.errors.set(s.task_id, (e = []));
      for (let i = before; i < td.seq.length; i++) {
        c.t.push(td.t[i]);
        c.y.push(td[metric][i]);
        e.push(td.error[i]);
      }
    }
    this._scheduleFlush();
  }

  _scheduleFlush() {
    if (this.flushTimer || !this.pending) return;
    const wait = Math.max(0, this.lastFlush + this.flushEvery - performance.now());
    this.flushTimer = setTimeout(() => this._flush(), wait);
  }

  _flush() {
    clearTimeout(this.flushTimer);
    this.flushTimer = 0;
    const p = this.pending;
    this.pending = null;
    if (!p || !this.curves) return;
    const t0 = (this.lastFlush = performance.now());
    const appended = this.curves.append(p.curve);
    this.hist.addValues(p.errors);
    // Flushes that draw slowly (huge runs) come less often: at most ~20 % of the time drawing.
    if (appended) {
      Promise.all([this.curves.drawn(), this.hist.drawn()]).then(() => {
        this.flushEvery = Math.min(2000, Math.max(FLUSH_MS, 5 * (performance.now() - t0)));
      });
    }
    if (!this.marked) this._drawnMark();
  }

  async _onEnd(finalState) {
    this._flush();
    this.streamNote.textContent = '';
    try {
      this.exp = await api.experiment(this.id, { signal: this.abort.signal });
      if (this.abort.signal.aborted) return;
      const summaryClients = ((this.exp.summary || {}).clients || []).map((c) => ({ ...c, role: 'client' }));
      this._addTasks([...(this.exp.tasks || []), ...summaryClients]);
      this.progress.clear(); // the final table has no progress column
      this._renderMeta();
      this._renderTable();
      this._showFinal();
      if (!this.marked) await this._drawnMark();
      this._setState('ready');
      this.ctx.onEnded(this, finalState);
    } catch (err) {
      this._fail(err);
    }
  }

  _closeStream() {
    if (this.es) this.es.close();
    this.es = null;
  }

  // ----- controls -----

  setHidden(hidden) {
    if (!this.curves) return;
    this.curves.setHidden(hidden);
    this.hist.setHidden(hidden);
    for (const tr of this.table.querySelectorAll('tbody tr')) {
      const h = hidden.has(tr.dataset.scheme);
      tr.classList.toggle('row-hidden', h);
      if (h) tr.setAttribute('aria-disabled', 'true');
      else tr.removeAttribute('aria-disabled');
    }
  }

  setScale() {
    if (this.curves) this.curves.setScale(this._scaleFor(this.ctx.metric));
  }

  async setMetric(metric) {
    if (!this.curves || this.state === 'error') return;
    const req = ++this.metricRequest;
    const wasLive = this.state === 'live';
    this._flush();
    this._setCurvesTitle();
    this.curves.title = `${this.id}: ${METRIC_TITLE[metric].toLowerCase()} (µs)`;
    this.curves.setScale(this._scaleFor(metric));
    if (!wasLive) this._setState('loading');
    try {
      // Samples with the extremes of this metric; the stream's newer ones are carried over.
      if (!(await this._loadSamples()) || req !== this.metricRequest) return;
      if (this.histCaption.dataset.histogramMode === 'samples') this._binAll();
      if (!wasLive && this.state === 'loading') this._setState('ready');
    } catch (err) {
      this._fail(err);
    }
  }

  destroy() {
    this.abort.abort();
    if (this.traffic) this.traffic.destroy();
    this._closeStream();
    clearTimeout(this.flushTimer);
    if (this.curves) this.curves.destroy();
    if (this.hist) this.hist.destroy();
    this.curves = this.hist = null;
  }
}
