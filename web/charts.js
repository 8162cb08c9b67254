// The dashboard's two charts, on uPlot (served from /vendor/uplot/, see docs/http-api.md):
//
// CurveChart: one curve per client task over time (x = t_s seconds, y = µs), coloured by its
//   scheme. uPlot needs one shared x array, so the tasks' samples are merged into rows sorted
//   by t_s, each row owned by one task (the other series hold `undefined` there, which uPlot
//   skips without breaking the line, and its cursor looks past). append() merges a live batch
//   into the tail in O(tail + batch), so live updates stay cheap on 4 x 100 000 points.
//   Drag on x zooms, double-click resets; a zoomed view keeps its x range while data arrives.
// HistogramChart: overlaid per-task histograms over the API's fixed bucket edges, x = bucket
//   index (bucket i holds edges[i-1] < v <= edges[i]), labelled by edges, centred on zero.
//
// Both: setHidden(Set of schemes) hides series; pointsAttr() gives the test hook
// "scheme:points,..." over visible schemes; exportPng() downloads the chart as a PNG with a
// white background, title and legend; drawn() resolves after the next draw.

import uPlot from '/vendor/uplot/uPlot.esm.js';
import { schemeColor, schemeLabel, fmtEdge, el } from './format.js';

const METRIC_LABEL = {
  error: 'residual error (µs)',
  offset: 'measured offset (µs)',
  correction: 'applied correction (µs)',
};

// Label of each task's series: the scheme, plus the task id when a scheme appears twice.
function seriesLabels(tasks) {
  const n = new Map();
  for (const t of tasks) n.set(t.scheme, (n.get(t.scheme) || 0) + 1);
  return tasks.map((t) => (n.get(t.scheme) > 1 ? `${schemeLabel(t.scheme)} ${t.task_id}` : schemeLabel(t.scheme)));
}

class ChartBase {
  constructor(container, { title, tasks, hidden, onToggle }) {
    this.container = container;
    this.onToggle = onToggle || (() => {});
    this.title = title;
    this.tasks = tasks; // [{task_id, scheme}]
    this.hidden = new Set(hidden || []);
    this.u = null;
    this._drawWaiters = [];
    this._resize = new ResizeObserver(() => this._fit());
    this._resize.observe(container);
  }

  _width() {
    return Math.max(240, Math.floor(this.container.clientWidth || 600));
  }

  _fit() {
    if (!this.u) return;
    const w = this._width();
    if (Math.abs(w - this.u.width) > 2) this.u.setSize({ width: w, height: this.height });
  }

  _onDraw() {
    const waiters = this._drawWaiters;
    this._drawWaiters = [];
    for (const w of waiters) w();
  }

  // uPlot hooks: draw waiters, and legend clicks reported through onToggle(scheme, show).
  _hooks() {
    return {
      draw: [() => this._onDraw()],
      setSeries: [
        (u, i, o) => {
          if (i == null || i < 1 || !o || o.show == null) return;
          this.onToggle(this.tasks[i - 1].scheme, o.show);
        },
      ],
    };
  }

  drawn() {
    return new Promise((resolve) => this._drawWaiters.push(resolve));
  }

  _applyVisibility() {
    if (!this.u) return;
    this.tasks.forEach((t, i) => {
      const show = !this.hidden.has(t.scheme);
      if (this.u.series[i + 1].show !== show) this.u.setSeries(i + 1, { show }, false);
    });
  }

  setHidden(hidden) {
    this.hidden = new Set(hidden);
    this._applyVisibility();
    this._updateAttr();
  }

  // Points per visible scheme, summed over its tasks: "raw:123,ewma:120".
  pointsAttr() {
    const sums = new Map();
    this.tasks.forEach((t, i) => {
      if (this.hidden.has(t.scheme)) return;
      sums.set(t.scheme, (sums.get(t.scheme) || 0) + this._points(i));
    });
    return [...sums].map(([s, n]) => `${s}:${n}`).join(',');
  }

  _updateAttr() {
    this.container.dataset.seriesPoints = this.pointsAttr();
  }

  exportPng(filename) {
    if (!this.u) return;
    const src = this.u.ctx.canvas;
    const dpr = src.width / this.u.width || 1;
    const head = Math.round(48 * dpr);
    const out = document.createElement('canvas');
    out.width = src.width;
    out.height = src.height + head;
    const ctx = out.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.fillStyle = '#222';
    ctx.textBaseline = 'middle';
    ctx.font = `600 ${Math.round(14 * dpr)}px system-ui, sans-serif`;
    ctx.fillText(this.title, 10 * dpr, 14 * dpr);
    ctx.font = `${Math.round(12 * dpr)}px system-ui, sans-serif`;
    let x = 10 * dpr;
    const labels = seriesLabels(this.tasks);
    this.tasks.forEach((t, i) => {
      if (this.hidden.has(t.scheme)) return;
      ctx.fillStyle = schemeColor(t.scheme);
      ctx.fillRect(x, 33 * dpr, 14 * dpr, 4 * dpr);
      x += 18 * dpr;
      ctx.fillStyle = '#222';
      ctx.fillText(labels[i], x, 35 * dpr);
      x += ctx.measureText(labels[i]).width + 14 * dpr;
    });
    ctx.drawImage(src, 0, head);
    const a = el('a', { href: out.toDataURL('image/png'), download: filename });
    document.body.append(a);
    a.click();
    a.remove();
  }

  destroy() {
    this._resize.disconnect();
    if (this.u) this.u.destroy();
    this.u = null;
  }
}

export class CurveChart extends ChartBase {
  // opts: {title, tasks, hidden, metric: 'error'|'offset'|'correction', scale: 'symlog'|'linear',
  //        onToggle(scheme, show)}: onToggle is called when the user clicks a legend entry
  //        (HistogramChart takes it too).
  constructor(container, opts) {
    super(container, opts);
    this.height = opts.height || 300;
    this.metric = opts.metric || 'error';
    this.scale = opts.scale || 'symlog';
    this._clear();
    this._build();
  }

  _clear() {
    this.x = [];
    this.owner = []; // task index of each row
    this.ys = this.tasks.map(() => []);
    this.counts = this.tasks.map(() => 0); // non-null values per task
  }

  _points(i) {
    return this.counts[i];
  }

  _build() {
    if (this.u) this.u.destroy();
    const labels = seriesLabels(this.tasks);
    const symlog = this.scale === 'symlog';
    const opts = {
      width: this._width(),
      height: this.height,
      scales: {
        x: { time: false },
        y: symlog ? { distr: 4, asinh: 1 } : {},
      },
      axes: [
        { label: 't (s)', labelSize: 20, size: 36 },
        { label: METRIC_LABEL[this.metric], labelSize: 20, size: 64 },
      ],
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      legend: { live: true },
      series: [
        { label: 't (s)', value: (u, v) => (v == null ? '--' : v.toFixed(3)) },
        ...this.tasks.map((t, i) => ({
          label: labels[i],
          stroke: schemeColor(t.scheme),
          width: 1.5,
          spanGaps: true,
          show: !this.hidden.has(t.scheme),
          points: { show: false },
          value: (u, v) => (v == null ? '--' : v.toFixed(3)),
        })),
      ],
      hooks: this._hooks(),
    };
    this.u = new uPlot(opts, [this.x, ...this.ys], this.container);
    this._updateAttr();
  }

  setScale(scale) {
    if (scale === this.scale) return;
    this.scale = scale;
    this._build();
  }

  // Replaces everything: columns = Map(task_id -> {t: [], y: []}), each sorted by t.
  setColumns(metric, columns) {
    const rebuild = metric !== this.metric;
    this.metric = metric;
    this._clear();
    const cols = this.tasks.map((t) => columns.get(t.task_id) || { t: [], y: [] });
    const n = cols.reduce((a, c) => a + c.t.length, 0);
    // Preallocated (the other series' slots hold undefined), then a k-way
    // merge by t (k is small).
    const x = new Array(n);
    const owner = new Array(n);
    const ys = cols.map(() => new Array(n).fill(undefined));
    const pos = cols.map(() => 0);
    for (let r = 0; r < n; r++) {
      let best = -1;
      let bt = Infinity;
      for (let k = 0; k < cols.length; k++) {
        if (pos[k] < cols[k].t.length && cols[k].t[pos[k]] < bt) {
          bt = cols[k].t[pos[k]];
          best = k;
        }
      }
      const y = cols[best].y[pos[best]++];
      x[r] = bt;
      owner[r] = best;
      ys[best][r] = y;
      if (y != null) this.counts[best]++;
    }
    this.x = x;
    this.owner = owner;
    this.ys = ys;
    if (rebuild) this._build();
    else this._commit(false);
  }

  _pushRow(t, k, y) {
    this.x.push(t);
    this.owner.push(k);
    for (let j = 0; j < this.ys.length; j++) this.ys[j].push(j === k ? y : undefined);
    if (y != null) this.counts[k]++;
  }

  // Appends new samples: batch = Map(task_id -> {t: [], y: []}), each sorted by t, all newer
  // (per task) than what the chart holds; false when there was nothing to add. Rows of other tasks newer than the batch's oldest
  // sample are merged with it, so x stays sorted.
  append(batch) {
    const rows = [];
    this.tasks.forEach((t, k) => {
      const c = batch.get(t.task_id);
      if (!c) return;
      for (let i = 0; i < c.t.length; i++) rows.push([c.t[i], k, c.y[i]]);
    });
    if (rows.length === 0) return false;
    let tmin = Infinity;
    for (const r of rows) if (r[0] < tmin) tmin = r[0];
    // First row with x > tmin.
    let lo = 0;
    let hi = this.x.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.x[mid] <= tmin) lo = mid + 1;
      else hi = mid;
    }
    const tail = [];
    for (let r = lo; r < this.x.length; r++) {
      const k = this.owner[r];
      tail.push([this.x[r], k, this.ys[k][r]]);
      if (this.ys[k][r] != null) this.counts[k]--;
    }
    this.x.length = lo;
    this.owner.length = lo;
    for (const y of this.ys) y.length = lo;
    const merged = tail.concat(rows);
    merged.sort((a, b) => a[0] - b[0]); // stable: the tail stays ahead on ties
    for (const [t, k, y] of merged) this._pushRow(t, k, y);
    this._commit(true);
    return true;
  }

  // Redraws with the current arrays; keeps a zoomed x range when `keepZoom`.
  _commit(keepZoom) {
    const u = this.u;
    const data = [this.x, ...this.ys];
    const sx = u.scales.x;
    // The arrays are updated in place, so the extent last drawn is remembered here.
    const [lo, hi] = this._extent || [null, null];
    const zoomed = keepZoom && lo != null && sx.min != null && (sx.min > lo + 1e-9 || sx.max < hi - 1e-9);
    this._extent = this.x.length ? [this.x[0], this.x[this.x.length - 1]] : null;
    if (zoomed) {
      const { min, max } = sx;
      u.setData(data, false);
      u.setScale('x', { min, max });
    } else {
      u.setData(data);
    }
    this._updateAttr();
  }
}

export class HistogramChart extends ChartBase {
  // opts: {title, tasks, hidden, edges}: edges = the API's error edges (µs).
  constructor(container, opts) {
    super(container, opts);
    this.height = opts.height || 220;
    this.edges = opts.edges || [];
    this.counts = this.tasks.map(() => new Array(this.edges.length + 1).fill(0));
    this.totals = this.tasks.map(() => 0);
    this._build();
  }

  _points(i) {
    return this.totals[i];
  }

  // Index of the bucket holding v: the first i with v <= edges[i], else the overflow bucket.
  bucketOf(v) {
    const e = this.edges;
    let lo = 0;
    let hi = e.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (v <= e[mid]) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  _bucketLabel(i) {
    const e = this.edges;
    if (i == null || e.length === 0) return '--';
    if (i <= 0) return `≤ ${e[0]} µs`;
    if (i >= e.length) return `> ${e[e.length - 1]} µs`;
    return `(${e[i - 1]}, ${e[i]}] µs`;
  }

  // Labels for the bucket edges at `splits`: 0 and the powers of ten, from zero outwards,
  // skipping any closer than MIN_PX to the previous one on its side (ticks stay on every edge).
  _edgeLabels(u, splits) {
    const MIN_PX = 36;
    const labels = splits.map(() => '');
    const zero = splits.findIndex((x) => this.edges[Math.round(x - 0.5)] === 0);
    const start = zero >= 0 ? zero : Math.floor(splits.length / 2);
    const want = (i) => {
      const v = this.edges[Math.round(splits[i] - 0.5)];
      return v === 0 || Number.isInteger(Math.log10(Math.abs(v)));
    };
    const px = (i) => u.valToPos(splits[i], 'x');
    if (want(start)) labels[start] = fmtEdge(this.edges[Math.round(splits[start] - 0.5)]);
    for (const dir of [-1, 1]) {
      let last = px(start);
      for (let i = start + dir; i >= 0 && i < splits.length; i += dir) {
        if (!want(i) || Math.abs(px(i) - last) < MIN_PX) continue;
        labels[i] = fmtEdge(this.edges[Math.round(splits[i] - 0.5)]);
        last = px(i);
      }
    }
    return labels;
  }

  // x range, symmetric around the zero edge, wide enough for every non-empty visible bucket.
  _range() {
    const nb = this.edges.length + 1;
    let zero = this.edges.indexOf(0);
    if (zero < 0) zero = Math.floor(this.edges.length / 2);
    const centre = zero + 0.5;
    let half = 3;
    this.tasks.forEach((t, k) => {
      if (this.hidden.has(t.scheme)) return;
      this.counts[k].forEach((c, b) => {
        if (c > 0) half = Math.max(half, Math.abs(b - centre) + 1);
      });
    });
    half = Math.min(half, Math.max(centre + 0.5, nb - centre - 0.5));
    return [centre - half, centre + half];
  }

  _build() {
    if (this.u) this.u.destroy();
    const labels = seriesLabels(this.tasks);
    const edges = this.edges;
    const opts = {
      width: this._width(),
      height: this.height,
      scales: {
        x: { time: false, range: () => this._range() },
        y: { range: (u, min, max) => [0, Math.max(1, max * 1.05)] },
      },
      axes: [
        {
          label: 'error (µs), bucket edges',
          labelSize: 20,
          size: 36,
          splits: (u, ai, min, max) => {
            const s = [];
            for (let j = 0; j < edges.length; j++) if (j + 0.5 >= min && j + 0.5 <= max) s.push(j + 0.5);
            return s;
          },
          values: (u, splits) => this._edgeLabels(u, splits),
          grid: { show: false },
        },
        { label: '% of samples', labelSize: 20, size: 48 },
      ],
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      legend: { live: true },
      series: [
        { label: 'bucket', value: (u, v) => this._bucketLabel(v) },
        ...this.tasks.map((t, i) => ({
          label: labels[i],
          stroke: schemeColor(t.scheme),
          fill: schemeColor(t.scheme) + '38',
          width: 1,
          show: !this.hidden.has(t.scheme),
          paths: uPlot.paths.bars({ size: [0.86, Infinity], align: 0 }),
          points: { show: false },
          value: (u, v, si, di) => (di == null ? '--' : v == null ? '0 %' : `${v.toFixed(2)} %`),
        })),
      ],
      hooks: this._hooks(),
    };
    this.u = new uPlot(opts, this._data(), this.container);
    this._updateAttr();
  }

  _data() {
    const nb = this.edges.length + 1;
    const x = Array.from({ length: nb }, (_, i) => i);
    const ys = this.counts.map((c, k) =>
      c.map((n) => (n > 0 && this.totals[k] > 0 ? (100 * n) / this.totals[k] : null)));
    return [x, ...ys];
  }

  // counts: Map(task_id -> per-bucket counts, edges.length + 1 long).
  setCounts(counts) {
    this.tasks.forEach((t, k) => {
      const c = counts.get(t.task_id);
      this.counts[k] = c ? c.slice() : new Array(this.edges.length + 1).fill(0);
      this.totals[k] = this.counts[k].reduce((a, b) => a + b, 0);
    });
    this._redraw();
  }

  // Bins values into the current counts: Map(task_id -> [error_us...]).
  addValues(values) {
    this.tasks.forEach((t, k) => {
      const vs = values.get(t.task_id);
      if (!vs) return;
      for (const v of vs) {
        if (v == null) continue;
        this.counts[k][this.bucketOf(v)]++;
        this.totals[k]++;
      }
    });
    this._redraw();
  }

  _redraw() {
    this.u.setData(this._data());
    this._updateAttr();
  }

  setHidden(hidden) {
    super.setHidden(hidden);
    this.u.setScale('x', { min: 0, max: 1 }); // the range function recentres on what is shown
  }
}
