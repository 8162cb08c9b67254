// A TCP or UDP traffic run on the page (RunView hands over to it when the run's kind is "tcp"
// or "udp"): the throughput of every client over time, its latency (p50 solid, p99 dashed)
// and a statistics table from the clients' reports.
//
// Data: GET /experiments/{id}/intervals (one point per client per interval, as stored). While
// the run goes on the page polls it every POLL_MS and redraws; when the run ends it fetches
// the run once more for the final reports.
//
// Test hooks: .chart-throughput / .chart-latency [data-series-points] "task:points,..." (the
// values drawn per client: intervals with a throughput / with a p50 latency);
// table.stats.traffic tr[data-task] td[data-field] (bits_per_second, rate, p50, p99, p999,
// errors).

import uPlot from '/vendor/uplot/uPlot.esm.js';
import { api } from './api.js';
import { DASH, el, fmtDuration, fmtTime } from './format.js';

const POLL_MS = 1000;
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function fmtRate(bps) {
  if (typeof bps !== 'number' || !Number.isFinite(bps)) return DASH;
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
  let i = 0;
  while (bps >= 1000 && i < units.length - 1) {
    bps /= 1000;
    i++;
  }
  return `${bps.toFixed(2)} ${units[i]}`;
}

function fmtUs(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(1) : DASH;
}

// One uPlot line chart over the clients: x = interval end (s), one or two series per client.
class LineChart {
  constructor(box, { title, yLabel, series }) {
    this.box = box;
    this.title = title;
    this.yLabel = yLabel;
    this.series = series; // [{label, color, dash}]
    this.u = null;
    this._resize = new ResizeObserver(() => this._fit());
    this._resize.observe(box);
  }

  _width() {
    return Math.max(240, Math.floor(this.box.clientWidth || 600));
  }

  _fit() {
    if (this.u && Math.abs(this._width() - this.u.width) > 2) {
      this.u.setSize({ width: this._width(), height: 260 });
    }
  }

  // data: [x[], y1[], y2[], ...] (uPlot's aligned form); points: "label:n,..." for tests.
  set(data, points) {
    this.box.dataset.seriesPoints = points;
    if (this.u) {
      this.u.setData(data);
      return;
    }
    this.u = new uPlot({
      width: this._width(),
      height: 260,
      scales: { x: { time: false } },
      axes: [{ label: 't (s)', labelSize: 20, size: 36 }, { label: this.yLabel, labelSize: 20, size: 72 }],
      series: [{ label: 't (s)' }, ...this.series.map((s) => ({
        label: s.label, stroke: s.color, width: 2, dash: s.dash, spanGaps: true,
      }))],
      legend: { live: true },
    }, data, this.box);
  }

  destroy() {
    this._resize.disconnect();
    if (this.u) this.u.destroy();
    this.u = null;
  }
}

export class TrafficView {
  // onState(state): 'ready' | 'live' | 'error', as RunView's.
  constructor(root, id, exp, { onState, onEnded, onError, signal }) {
    this.root = root;
    this.id = id;
    this.exp = exp;
    this.onState = onState;
    this.onEnded = onEnded;
    this.onError = onError;
    this.signal = signal;
    this.timer = 0;
    this.charts = [];
    this.failures = 0;
    this.destroyed = false;
  }

  async start() {
    this._render();
    await this._refresh();
    if (this.exp.experiment.state === 'running') {
      this.onState('live');
      this._poll();
    } else {
      this.onState('ready');
    }
  }

  _poll() {
    this.timer = setTimeout(async () => {
      try {
        const running = await this._refresh();
        if (running) {
          this._poll();
          return;
        }
        this.exp = await api.experiment(this.id, { signal: this.signal });
        this._renderHeader();
        this._renderTable();
        this.onState('ready');
        this.onEnded();
      } catch (err) {
        if (err.name === 'AbortError' || this.destroyed) return;
        // A blip: try again; a run that keeps failing (404, 500) is an error on the page.
        if (++this.failures < 5) this._poll();
        else this.onError(err);
      }
    }, POLL_MS);
  }

  // Fetches the intervals and redraws; returns whether the run still goes on.
  async _refresh() {
    const data = await api.intervals(this.id, { signal: this.signal });
    if (this.destroyed) return false;
    this.failures = 0;
    this.tasks = data.tasks;
    this._draw();
    return data.state === 'running';
  }

  _render() {
    const e = this.exp.experiment;
    this.header = el('header', { className: 'run-header' });
    this.throughputBox = el('div', { className: 'chart chart-throughput', attrs: { role: 'img', 'aria-label': 'throughput per client over time' } });
    this.latencyBox = el('div', { className: 'chart chart-latency', attrs: { role: 'img', 'aria-label': 'latency per client over time' } });
    this.table = el('table', { className: 'stats traffic' });
    this.root.replaceChildren(
      this.header,
      el('section', { className: 'panel' },
        el('div', { className: 'panel-head' }, el('h3', {}, 'Throughput per client'),
          el('span', { className: 'caption' }, `${e.kind.toUpperCase()}, one point per interval`)),
        this.throughputBox),
      el('section', { className: 'panel' },
        el('div', { className: 'panel-head' }, el('h3', {}, 'Latency per client'),
          el('span', { className: 'caption' }, 'µs; p50 solid, p99 dashed (TCP: request/response; UDP: round trip)')),
        this.latencyBox),
      el('section', { className: 'panel panel-table' },
        el('div', { className: 'panel-head' }, el('h3', {}, 'Statistics per client'),
          el('span', { className: 'caption' }, 'from each client\'s report at the end')),
        el('div', { className: 'table-wrap' }, this.table)));
    this._renderHeader();
    this._renderTable();
  }

  _renderHeader() {
    const e = this.exp.experiment;
    this.header.replaceChildren(
      el('div', { className: 'run-title' }, el('h2', {}, this.id),
        el('span', { className: `badge badge-${e.state}`, dataset: { runState: e.state } }, e.state)),
      el('span', { className: 'meta' },
        `${e.kind} · started ${fmtTime(e.created_ns)} · ${fmtDuration(e.created_ns, e.finished_ns)}`),
      el('details', { className: 'spec' }, el('summary', {}, 'spec'),
        el('pre', {}, JSON.stringify(this.exp.spec ?? {}, null, 2))));
  }

  _draw() {
    const tasks = this.tasks || [];
    // One shared x: the union of interval ends; each client's values where it has them.
    const xs = [...new Set(tasks.flatMap((t) => t.intervals.end_s))].sort((a, b) => a - b);
    const at = (t, column) => {
      const m = new Map(t.intervals.end_s.map((x, i) => [x, t.intervals[column][i]]));
      return xs.map((x) => (m.has(x) && m.get(x) != null ? m.get(x) : null));
    };
    const label = (t) => `${t.task_id} (${t.agent})`;
    const drawn = (column) => tasks
      .map((t) => `${t.task_id}:${t.intervals[column].filter((v) => v != null).length}`).join(',');
    if (this.charts.length === 0) {
      this.throughput = new LineChart(this.throughputBox, {
        title: 'throughput', yLabel: 'Mbit/s',
        series: tasks.map((t, i) => ({ label: label(t), color: COLORS[i % COLORS.length] })),
      });
      this.latency = new LineChart(this.latencyBox, {
        title: 'latency', yLabel: 'µs',
        series: tasks.flatMap((t, i) => [
          { label: `${label(t)} p50`, color: COLORS[i % COLORS.length] },
          { label: `${label(t)} p99`, color: COLORS[i % COLORS.length], dash: [6, 4] },
        ]),
      });
      this.charts = [this.throughput, this.latency];
    }
    this.throughput.set([xs, ...tasks.map((t) => at(t, 'bits_per_second').map((v) => (v == null ? null : v / 1e6)))],
      drawn('bits_per_second'));
    this.latency.set([xs, ...tasks.flatMap((t) => [at(t, 'latency_p50_us'), at(t, 'latency_p99_us')])],
      drawn('latency_p50_us'));
  }

  _renderTable() {
    const clients = (this.exp.summary && this.exp.summary.clients) || [];
    const head = el('tr', {}, ...['client', 'agent', 'state', 'throughput', 'rate', 'p50 µs', 'p99 µs', 'p999 µs', 'errors / loss']
      .map((h) => el('th', {}, h)));
    const rows = clients.map((c) => {
      const udp = String(c.scheme || '').startsWith('udp');
      const lat = c.latency_us || {};
      const rate = udp
        ? (typeof c.packets_per_second === 'number' ? `${c.packets_per_second.toFixed(0)} pkt/s` : DASH)
        : (c.mode === 'rr' && typeof c.requests_per_second === 'number' ? `${c.requests_per_second.toFixed(0)} req/s` : DASH);
      const errors = udp && typeof c.lost_percent === 'number'
        ? `${c.lost_percent.toFixed(2)} % lost` : (c.errors ?? DASH);
      const cell = (field, text) => el('td', { dataset: { field } }, String(text));
      return el('tr', { dataset: { task: c.task_id, scheme: c.scheme } },
        cell('task_id', c.task_id), cell('agent', c.agent), cell('state', c.state),
        cell('bits_per_second', fmtRate(c.bits_per_second)), cell('rate', rate),
        cell('p50', fmtUs(lat.p50)), cell('p99', fmtUs(lat.p99)), cell('p999', fmtUs(lat.p999)),
        cell('errors', errors));
    });
    this.table.replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
  }

  destroy() {
    this.destroyed = true;
    clearTimeout(this.timer);
    for (const c of this.charts) c.destroy();
    this.charts = [];
  }
}
