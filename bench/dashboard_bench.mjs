#!/usr/bin/env node
// Dashboard benchmark: prints figures, asserts nothing (the machines are noisy).
//
//  1. Render time in headless Chromium of a finished run of CLIENTS x SAMPLES samples: page
//     navigation start to performance.mark('charts-drawn') (set by web/run-view.js once the
//     curves and histogram hold the run's data), with ?max_points=0 (every sample) and with
//     the API's default downsampling; median of --rounds page loads each. Each with the
//     Accept-Encoding Chromium sends and with `identity` (set through Playwright), which
//     separates the page's own cost from the response's compression.
//  2. Live update cost: web/charts.js's CurveChart holding CLIENTS x SAMPLES points (generated
//     in the page, interleaved in time like a run's), one 250 ms batch (CLIENTS x 50 samples)
//     appended and drawn; the same with the histogram's binning and redraw (what a live flush
//     does). Median and p90.
//  3. GET /samples response time (whole body read) from Node's fetch, default downsampling
//     and max_points=0, with Accept-Encoding identity, gzip and Chromium's (gzip, deflate,
//     br, zstd); median of --requests. Slow cases stop repeating after BUDGET_MS.
//
// The run comes from build/bench/seed_store in a temporary database served by a
// lab-controller started here (stopped by PID at the end). Binaries: SEED_STORE,
// LAB_CONTROLLER (defaults: build/); Chromium: /usr/bin/chromium. Needs `npm ci` in tests/e2e
// (playwright-core) and web/ (uPlot).
//   usage: node bench/dashboard_bench.mjs [--clients 4] [--samples 100000] [--rounds 3]
//                                         [--requests 10] [--batches 30]

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Processes, bin, launchBrowser, startController } from '../tests/e2e/lab.mjs';

const opts = { clients: 4, samples: 100000, rounds: 3, requests: 10, batches: 30 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opts) || !(Number(process.argv[i + 1]) > 0)) {
    console.error('usage: node bench/dashboard_bench.mjs [--clients 4] [--samples 100000] [--rounds 3] [--requests 10] [--batches 30]');
    process.exit(2);
  }
  opts[k] = Number(process.argv[i + 1]);
}

// Each case stops repeating once it has taken this long (one run at least).
const BUDGET_MS = 30000;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const pct = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]; };
const ms = (v) => `${v.toFixed(1)} ms`;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-dash-bench-'));
const procs = new Processes(path.join(tmp, 'logs'));
let browser;
try {
  const db = path.join(tmp, 'results.db');
  let t0 = performance.now();
  const seeded = JSON.parse(execFileSync(bin.seedStore,
    ['--db', db, '--clients', String(opts.clients), '--samples', String(opts.samples)], { encoding: 'utf8' }));
  const id = seeded.experiment_id;
  console.log(`run ${id}: ${opts.clients} x ${opts.samples} samples (seeded in ${ms(performance.now() - t0)})`);
  console.log(`machine: ${os.cpus().length} cores, node ${process.version}`);

  const ctl = await startController(procs, ['--db', db, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0']);

  // 3. API response times, per Accept-Encoding (Chromium sends the last one).
  console.log(`\nGET /samples (median of up to ${opts.requests} within ${BUDGET_MS / 1000} s, whole body read and decoded):`);
  for (const [label, q] of [['default downsampling', ''], ['max_points=0', '?max_points=0']]) {
    for (const enc of ['identity', 'gzip', 'gzip, deflate, br, zstd']) {
      const times = [];
      let bytes = 0;
      let wire = '';
      let points = 0;
      const start = performance.now();
      for (let i = 0; i < opts.requests && (i === 0 || performance.now() - start < BUDGET_MS); i++) {
        t0 = performance.now();
        const res = await fetch(`${ctl.base}/api/v1/experiments/${id}/samples${q}`, { headers: { 'accept-encoding': enc } });
        const buf = await res.arrayBuffer();
        times.push(performance.now() - t0);
        if (res.status !== 200) throw new Error(`GET /samples${q}: ${res.status} ${Buffer.from(buf).toString().slice(0, 200)}`);
        bytes = buf.byteLength;
        wire = `${res.headers.get('content-encoding') || 'identity'}, ${res.headers.get('content-length') || '?'} B on the wire`;
        if (i === 0) points = JSON.parse(Buffer.from(buf).toString()).tasks.reduce((a, t) => a + t.points, 0);
      }
      console.log(`  ${label.padEnd(21)} ${`[${enc}]`.padEnd(26)} ${ms(median(times)).padStart(10)}  (n=${times.length}, ` +
        `min ${ms(Math.min(...times))}; ${(bytes / 1e6).toFixed(2)} MB JSON, ${wire}; ${points} points)`);
    }
  }

  browser = await launchBrowser();
  console.log(`chromium ${browser.version()}`);

  // 1. Render time.
  console.log(`\nrender: navigation start to charts drawn (median of up to ${opts.rounds} loads within ${BUDGET_MS / 1000} s):`);
  const cases = [];
  for (const enc of [null, 'identity']) {
    for (const [label, q] of [['default downsampling', ''], ['max_points=0', '?max_points=0']]) {
      cases.push([`${label} [${enc || "Chromium's"}]`, q, enc]);
    }
  }
  for (const [label, q, enc] of cases) {
    const drawn = [];
    const loaded = [];
    let pointsAttr = '';
    const start = performance.now();
    for (let i = 0; i < opts.rounds && (i === 0 || performance.now() - start < BUDGET_MS); i++) {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      if (enc) await page.setExtraHTTPHeaders({ 'accept-encoding': enc });
      await page.goto(`${ctl.dashboard}${q}#/experiments/${id}`);
      await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 180000 });
      const r = await page.evaluate(() => ({
        state: document.body.dataset.state,
        drawn: performance.getEntriesByName('charts-drawn')[0]?.startTime,
        loaded: performance.getEntriesByName('run-loaded')[0]?.startTime,
        points: document.querySelector('.chart-curves')?.dataset.seriesPoints,
      }));
      await page.close();
      if (r.state !== 'ready' || r.drawn == null) throw new Error(`page ended in state ${r.state}`);
      drawn.push(r.drawn);
      loaded.push(r.loaded);
      pointsAttr = r.points;
    }
    console.log(`  ${label.padEnd(33)} ${ms(median(drawn)).padStart(10)}  (n=${drawn.length}; run JSON in at ${ms(median(loaded))}; ` +
      `points ${pointsAttr})`);
  }

  // 2. Live append cost, on a page with no run view (an unknown route) and a chart of its own.
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`${ctl.dashboard}#/bench`);
  const live = await page.evaluate(async ({ id, batches, clients, samples: n }) => {
    const { CurveChart, HistogramChart } = await import('/charts.js');
    const exp = await fetch(`/api/v1/experiments/${id}`).then((r) => r.json());
    // The run's shape, generated here: fetching every sample goes through the browser's
    // Accept-Encoding (see item 3) and would time the API, not the chart.
    const schemes = ['raw', 'ewma', 'kalman', 'pid', 's5', 's6', 's7', 's8'];
    const samples = { tasks: [] };
    for (let k = 0; k < clients; k++) {
      const t = { task_id: `client-0${k + 1}-${schemes[k]}`, scheme: schemes[k], t_s: new Array(n), error_us: new Array(n) };
      for (let i = 0; i < n; i++) {
        t.t_s[i] = i * 0.001 + k * 0.00021;
        t.error_us[i] = 25000 * Math.exp(-i / (50 * (k + 1))) + (Math.random() - 0.5) * 4 * (k + 1);
      }
      samples.tasks.push(t);
    }
    const tasks = samples.tasks.map((t) => ({ task_id: t.task_id, scheme: t.scheme }));
    const box = (h) => {
      const d = document.createElement('div');
      d.style.width = '1200px';
      d.style.height = `${h}px`;
      document.body.prepend(d);
      return d;
    };
    const curves = new CurveChart(box(300), { title: 'bench', tasks, hidden: [], metric: 'error', scale: 'symlog' });
    const edges = exp.error_edges_us || Object.values(exp.histograms || {})[0]?.edges_us;
    const hist = new HistogramChart(box(230), { title: 'bench', tasks, hidden: [], edges });
    let t0 = performance.now();
    curves.setColumns('error', new Map(samples.tasks.map((t) => [t.task_id, { t: t.t_s, y: t.error_us }])));
    await curves.drawn();
    const fullDraw = performance.now() - t0;
    hist.addValues(new Map(samples.tasks.map((t) => [t.task_id, t.error_us])));
    await hist.drawn();

    // Batches of 50 new samples per task, continuing each task's time line (tasks interleave).
    const last = samples.tasks.map((t) => ({ t: t.t_s[t.t_s.length - 1], dt: (t.t_s[t.t_s.length - 1] - t.t_s[0]) / (t.t_s.length - 1) }));
    const batch = () => {
      const curve = new Map();
      const errors = new Map();
      samples.tasks.forEach((t, k) => {
        const c = { t: [], y: [] };
        for (let i = 0; i < 50; i++) {
          last[k].t += last[k].dt;
          c.t.push(last[k].t);
          c.y.push((Math.random() - 0.5) * 10);
        }
        curve.set(t.task_id, c);
        errors.set(t.task_id, c.y);
      });
      return { curve, errors };
    };
    const curveOnly = [];
    const flush = [];
    for (let i = 0; i < batches; i++) {
      let b = batch();
      t0 = performance.now();
      curves.append(b.curve);
      await curves.drawn();
      curveOnly.push(performance.now() - t0);
      b = batch();
      t0 = performance.now();
      curves.append(b.curve);
      hist.addValues(b.errors);
      await Promise.all([curves.drawn(), hist.drawn()]);
      flush.push(performance.now() - t0);
    }
    return { fullDraw, curveOnly, flush, rows: curves.x.length };
  }, { id, batches: opts.batches, clients: opts.clients, samples: opts.samples });
  await page.close();
  console.log(`\nlive update (${opts.clients} x 50 samples onto ${opts.clients} x ${opts.samples}, ${opts.batches} batches each):`);
  console.log(`  merge + setData + draw, all      ${ms(live.fullDraw).padStart(10)}`);
  console.log(`  curves append + draw            ${ms(median(live.curveOnly)).padStart(10)}  (p90 ${ms(pct(live.curveOnly, 0.9))})`);
  console.log(`  + histogram bin + draw (flush)  ${ms(median(live.flush)).padStart(10)}  (p90 ${ms(pct(live.flush, 0.9))})`);
  console.log(`  rows in the chart at the end: ${live.rows}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  await procs.stopAll();
  fs.rmSync(tmp, { recursive: true, force: true });
}
