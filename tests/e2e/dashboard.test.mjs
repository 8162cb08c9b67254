// Browser tests of the dashboard (web/) in headless Debian Chromium, against a real
// lab-controller with 3 lab-agents and runs started by labctl, all on 127.0.0.1 and stopped
// by PID at the end. Run: `node --test tests/e2e/dashboard.test.mjs` (CTest: dashboard_browser)
// with LAB_CONTROLLER, LAB_AGENT, LABCTL and LAB_ARTIFACTS_DIR set (defaults: build/).
// Screenshots and process logs go to $LAB_ARTIFACTS_DIR/dashboard/.
//
// The tests share one page and two runs, in order: (a) live curves grow, (b) hiding RAW,
// (c) final statistics match the API without a reload, (c2) labctl's dashboard link,
// (g) a TCP run's throughput and latency charts, live and final,
// (c3) the curves selector, (d) CSV export, (e) compare view and ?hide=, (f) an unknown run
// id. Every wait is a condition with a deadline.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Processes, artifactsDir, bin, countColors, getJson, launchBrowser, parsePoints, startController, waitFor,
} from './lab.mjs';

const COLORS = { raw: '#1f77b4', ewma: '#2ca02c', kalman: '#ff7f0e', pid: '#9467bd' };
const SCHEMES = Object.keys(COLORS);
const OUT = path.join(artifactsDir, 'dashboard');
const VIEW = 'main article:first-of-type';
const CURVES = `${VIEW} .chart-curves`;
const HIST = `${VIEW} .chart-histogram`;

let tmp;
let procs;
let ctl; // {base, port, http_port, dashboard}
let browser;
let page;
let runA; // {id, proc}
let runB;

const api = (p) => getJson(`${ctl.base}/api/v1${p}`);
const bodyState = () => page.evaluate(() => document.body.dataset.state);
const points = (sel) => page.evaluate((s) => document.querySelector(s)?.dataset.seriesPoints ?? '', sel).then(parsePoints);
const shot = (name) => page.screenshot({ path: path.join(OUT, name), fullPage: true });

async function waitState(state, timeout = 15000) {
  await page.waitForFunction((s) => document.body.dataset.state === s, state, { timeout }).catch(async (err) => {
    throw new Error(`page state is '${await bodyState()}', expected '${state}': ${err.message}`);
  });
}

function startRun(name, args) {
  return procs.start(name, bin.labctl, ['--controller', `127.0.0.1:${ctl.port}`, 'run', ...args, '--output', 'json']);
}

// Waits for labctl to exit 0 and returns its JSON output.
async function runResult(proc, timeout = 60000) {
  let timer;
  const { code, signal } = await Promise.race([
    proc.exited,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${proc.name} still running after ${timeout} ms`)), timeout); }),
  ]).finally(() => clearTimeout(timer));
  assert.equal(code, 0, `${proc.name} exited with ${code} (${signal}): ${proc.stderrText.slice(-1500)}`);
  return JSON.parse(proc.stdoutText);
}

describe('dashboard in headless Chromium', { timeout: 240000 }, () => {
  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lab-e2e-'));
    procs = new Processes(OUT);
    ctl = await startController(procs, ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--db', path.join(tmp, 'results.db')]);
    for (let i = 1; i <= 3; i++) {
      procs.start(`agent-${i}`, bin.agent, ['--controller', `127.0.0.1:${ctl.port}`, '--name', `agent-${i}`, '--address', '127.0.0.1']);
    }
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
    page = await context.newPage();
    page.on('pageerror', (err) => fs.appendFileSync(path.join(OUT, 'page-errors.log'), `${err.stack || err}\n`));
    await waitFor(async () => {
      const { body } = await api('/agents');
      return body.agents.filter((a) => a.alive).length >= 3;
    }, { timeout: 15000, what: '3 alive agents in GET /api/v1/agents' });
    await page.goto(ctl.dashboard);
    await waitState('ready');
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (procs) await procs.stopAll();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a. a live run shows four growing curves in their colours', async () => {
    runA = { proc: startRun('run-a', ['--clients', 'raw,ewma,kalman,pid', '--count', '400', '--interval', '10ms',
      '--offset', '25ms', '--drift-ppm', '80']) };
    runA.id = await waitFor(async () => {
      const { body } = await api('/experiments');
      return body.experiments.find((e) => e.state === 'running')?.experiment_id;
    }, { timeout: 20000, what: 'a running experiment in GET /api/v1/experiments' });

    await page.goto(`${ctl.dashboard}#/experiments/${runA.id}`);
    await waitState('live');
    const first = await waitFor(async () => {
      const p = await points(CURVES);
      return SCHEMES.every((s) => p[s] > 0) && p;
    }, { timeout: 10000, what: 'points of all four schemes in data-series-points' });
    const grown = await waitFor(async () => {
      const p = await points(CURVES);
      return SCHEMES.every((s) => p[s] > first[s]) && p;
    }, { timeout: 10000, what: `every scheme to grow past ${JSON.stringify(first)}` });
    assert.deepEqual(Object.keys(grown).sort(), [...SCHEMES].sort());
    assert.equal(await bodyState(), 'live', 'the run ended before the growth was seen');
    assert.equal(await page.locator(`${VIEW} table.stats tbody progress`).count(), 4, 'one progress bar per client while live');
    assert.equal(await page.locator(`${VIEW} [data-histogram-mode="live"]`).count(), 1);

    const px = await countColors(page, `${CURVES} canvas`, COLORS);
    for (const s of SCHEMES) assert.ok(px[s] > 20, `curve canvas has ${px[s]} pixels of ${s} ${COLORS[s]}: ${JSON.stringify(px)}`);
    await shot('a-live-curves.png');
  });

  test('b. hiding RAW removes its curve and histogram', async () => {
    await page.locator('input[type=checkbox][data-scheme="raw"]').uncheck();
    await waitFor(async () => !('raw' in (await points(CURVES))) && !('raw' in (await points(HIST))),
      { timeout: 5000, what: 'raw to leave data-series-points' });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))); // the redraw
    const curves = await countColors(page, `${CURVES} canvas`, COLORS);
    const hist = await countColors(page, `${HIST} canvas`, COLORS);
    assert.equal(curves.raw, 0, `RAW-blue pixels left in the curves: ${JSON.stringify(curves)}`);
    assert.equal(hist.raw, 0, `RAW-blue pixels left in the histogram: ${JSON.stringify(hist)}`);
    for (const s of ['ewma', 'kalman', 'pid']) {
      assert.ok(curves[s] > 20, `curves still show ${s}: ${JSON.stringify(curves)}`);
      assert.ok(hist[s] > 5, `histogram still shows ${s}: ${JSON.stringify(hist)}`);
    }
    const p = await points(CURVES);
    assert.deepEqual(Object.keys(p).sort(), ['ewma', 'kalman', 'pid']);
    assert.match(page.url(), /[?&]hide=raw(&|#|$)/);
    assert.equal(await page.locator(`tr[data-scheme="raw"].row-hidden`).count(), 1, 'RAW row greyed');
    await shot('b-raw-hidden.png');

    await page.locator('input[type=checkbox][data-scheme="raw"]').check();
    await waitFor(async () => 'raw' in (await points(CURVES)), { timeout: 5000, what: 'raw back in data-series-points' });
  });

  test('c. after the run, the statistics table matches the API (no reload)', async () => {
    const out = await runResult(runA.proc);
    assert.equal(out.experiment_id, runA.id);

    await waitState('ready', 20000);
    const { status, body } = await api(`/experiments/${runA.id}`);
    assert.equal(status, 200);
    await page.waitForFunction((st) => document.querySelector('.run-header [data-run-state]')?.dataset.runState === st,
      body.experiment.state, { timeout: 5000 });
    const clients = body.summary.clients;
    assert.equal(clients.length, 4);
    assert.equal(await page.locator('table.stats tbody tr').count(), 4);
    const cell = (task, field) => page.locator(`tr[data-task="${task}"] td[data-field="${field}"]`).innerText();
    const close = (text, v, what) => {
      const n = Number(text);
      assert.ok(Number.isFinite(n) && Math.abs(n - v) <= 0.0005 + 1e-9, `${what}: page '${text}' vs API ${v}`);
    };
    for (const c of clients) {
      const id = c.task_id;
      assert.equal((await cell(id, 'scheme')).trim().toLowerCase(), c.scheme);
      assert.equal(await cell(id, 'agent'), c.agent);
      assert.equal(await cell(id, 'state'), c.state);
      for (const f of ['abs_p50', 'abs_p95', 'abs_p99', 'rms']) close(await cell(id, f), c.error_us[f], `${id} ${f}`);
      const conv = await cell(id, 'converged_after_ms');
      if (c.converged) close(conv, c.converged_after_ms, `${id} converged_after_ms`);
      else assert.equal(conv, 'not converged');
      const loss = (await cell(id, 'loss')).match(/^(\d+)\/(\d+) \(([\d.]+)%\)$/);
      assert.ok(loss, `${id} loss cell`);
      assert.equal(Number(loss[1]), c.lost, `${id} lost`);
      assert.equal(Number(loss[2]), c.sent, `${id} sent`);
      assert.ok(Math.abs(Number(loss[3]) - (100 * c.lost) / c.sent) <= 0.005 + 1e-9, `${id} loss %`);
      assert.equal(await cell(id, 'timestamping'), c.timestamping);
      assert.equal(await cell(id, 'truth_known'), c.truth_known ? 'yes' : 'no');
    }
    assert.equal(await page.locator('article [data-histogram-mode="final"]').count(), 1, 'final histogram caption');
    await waitFor(async () => (await page.locator(`nav a[data-run-id="${runA.id}"] .badge`).innerText()) === body.experiment.state,
      { timeout: 5000, what: 'the runs list to show the final state' });

    // The live curves now hold exactly the stored samples: no gap, no repeat.
    const stored = await api(`/experiments/${runA.id}/samples?max_points=0`);
    const want = {};
    for (const t of stored.body.tasks) want[t.scheme] = (want[t.scheme] || 0) + t.seq.length;
    assert.deepEqual(await points(CURVES), want);
  });

  test('c2. labctl run printed the run\'s dashboard link', () => {
    const dash = runA.proc.stderrText.match(/^dashboard: (\S+)$/m);
    assert.ok(dash, `no 'dashboard: URL' line in labctl's stderr: ${runA.proc.stderrText.slice(0, 300)}`);
    assert.equal(dash[1], `${ctl.dashboard}#/experiments/${runA.id}`);
  });

  test('c3. the curves selector refetches /samples with keep=correction', async () => {
    const before = await points(CURVES);
    const [req] = await Promise.all([
      page.waitForRequest((r) => r.url().includes(`/experiments/${runA.id}/samples`) && r.url().includes('keep=correction')),
      page.locator('#metric').selectOption('correction'),
    ]);
    assert.ok(req);
    await waitState('ready');
    await page.waitForFunction((sel) => document.querySelector(sel).closest('.panel').querySelector('h3').textContent.includes('correction'),
      CURVES, { timeout: 5000 });
    assert.deepEqual(await points(CURVES), before);
    assert.match(page.url(), /[?&]metric=correction/);
    await page.locator('#metric').selectOption('error');
    await waitState('ready');
  });

  test('d. the CSV export equals export.csv and matches /samples', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('a[data-action=csv]').click()]);
    const csv = fs.readFileSync(await download.path(), 'utf8');
    const res = await fetch(`${ctl.base}/api/v1/experiments/${runA.id}/export.csv`);
    assert.equal(res.status, 200);
    assert.equal(csv, await res.text(), 'downloaded CSV differs from GET export.csv');
    assert.equal(download.suggestedFilename(), `${runA.id}.csv`);

    const [header, ...rows] = csv.trim().split('\n');
    const cols = header.split(',');
    const col = (name) => { const i = cols.indexOf(name); assert.ok(i >= 0, `CSV has no ${name}`); return i; };
    const [iTask, iSeq, iErr] = [col('task_id'), col('seq'), col('error_ns')];
    const byTask = new Map();
    for (const r of rows) {
      const f = r.split(',');
      if (!byTask.has(f[iTask])) byTask.set(f[iTask], []);
      byTask.get(f[iTask]).push([Number(f[iSeq]), Number(f[iErr]) / 1000]);
    }
    const { body } = await api(`/experiments/${runA.id}/samples?max_points=0`);
    assert.equal(body.downsampled, false);
    assert.equal(byTask.size, body.tasks.length);
    for (const t of body.tasks) {
      const got = byTask.get(t.task_id);
      assert.ok(got, `CSV has no rows of ${t.task_id}`);
      assert.equal(got.length, t.seq.length, `${t.task_id}: CSV rows vs /samples points`);
      assert.equal(t.stored, t.seq.length);
      got.forEach(([seq, err], i) => {
        assert.equal(seq, t.seq[i], `${t.task_id} row ${i} seq`);
        // CSV: %.1f ns; the API's µs carry 3 decimals (1 ns).
        assert.ok(Math.abs(err - t.error_us[i]) <= 0.00055 + 1e-9, `${t.task_id} seq ${seq}: CSV ${err} µs vs API ${t.error_us[i]}`);
      });
    }

    const [png] = await Promise.all([page.waitForEvent('download'), page.locator('button[data-action=png-curves]').click()]);
    const bytes = fs.readFileSync(await png.path());
    assert.equal(bytes.subarray(1, 4).toString(), 'PNG');
    assert.ok(bytes.length > 5000, `PNG of ${bytes.length} bytes`);
    fs.copyFileSync(await png.path(), path.join(OUT, 'd-export-curves.png'));
  });

  test('e. the compare view shows two runs side by side', async () => {
    runB = { proc: startRun('run-b', ['--clients', 'kalman,pid', '--count', '100', '--interval', '10ms']) };
    runB.id = (await runResult(runB.proc)).experiment_id;
    await page.goto(`${ctl.dashboard}#/compare/${runA.id}/${runB.id}`);
    await waitState('ready');
    const panes = page.locator('main .compare > article');
    assert.equal(await panes.count(), 2);
    assert.equal(await panes.nth(0).locator('h2').innerText(), runA.id);
    assert.equal(await panes.nth(1).locator('h2').innerText(), runB.id);
    assert.equal(await panes.nth(0).locator('table.stats tbody tr').count(), 4);
    assert.equal(await panes.nth(1).locator('table.stats tbody tr').count(), 2);
    const pa = parsePoints(await panes.nth(0).locator('.chart-curves').getAttribute('data-series-points'));
    const pb = parsePoints(await panes.nth(1).locator('.chart-curves').getAttribute('data-series-points'));
    assert.deepEqual(Object.keys(pa).sort(), [...SCHEMES].sort());
    assert.deepEqual(Object.keys(pb).sort(), ['kalman', 'pid']);
    assert.ok(pb.kalman > 0 && pb.pid > 0, JSON.stringify(pb));
    const ba = await panes.nth(0).boundingBox();
    const bb = await panes.nth(1).boundingBox();
    assert.ok(bb.x >= ba.x + ba.width - 1 && Math.abs(bb.y - ba.y) < 2, 'panes side by side');
    await shot('e-compare.png');

    // ?hide= in the URL hides a scheme from the start, in both panes.
    await page.goto(`${ctl.dashboard}?hide=pid#/compare/${runA.id}/${runB.id}`);
    await waitState('ready');
    for (let i = 0; i < 2; i++) {
      const p = parsePoints(await panes.nth(i).locator('.chart-curves').getAttribute('data-series-points'));
      assert.ok(!('pid' in p) && 'kalman' in p, JSON.stringify(p));
    }
    assert.equal(await page.locator('input[type=checkbox][data-scheme="pid"]').isChecked(), false);
    await page.goto(`${ctl.dashboard}#/`);
  });

  test('g. a TCP run shows throughput and latency per client live, then their reports', async () => {
    const proc = startRun('run-tcp', ['tcp', '--mode', 'rr', '--connections', '4', '--duration', '4s', '--interval', '250ms']);
    const id = await waitFor(async () => {
      const { body } = await api('/experiments');
      return body.experiments.find((e) => e.state === 'running' && e.kind === 'tcp')?.experiment_id;
    }, { timeout: 20000, what: 'a running tcp experiment in GET /api/v1/experiments' });
    await page.goto(`${ctl.dashboard}#/experiments/${id}`);
    await waitState('live');
    const TP = 'main .chart-throughput';
    const LAT = 'main .chart-latency';
    const first = await waitFor(async () => {
      const p = await points(TP);
      return Object.keys(p).length === 2 && Object.values(p).every((n) => n > 0) && p;
    }, { timeout: 10000, what: 'throughput points of both clients' });
    await waitFor(async () => {
      const p = await points(TP);
      return Object.keys(first).every((t) => p[t] > first[t]);
    }, { timeout: 10000, what: `both clients' throughput to grow past ${JSON.stringify(first)}` });
    await shot('g-live-traffic.png');

    const result = await runResult(proc);
    assert.equal(result.clients.length, 2);
    await waitState('ready', 20000);
    const { body: detail } = await api(`/experiments/${id}`);
    const { body: intervals } = await api(`/experiments/${id}/intervals`);
    const throughput = await points(TP);
    const latency = await points(LAT);
    for (const t of intervals.tasks) {
      assert.ok(t.intervals.seq.length >= 12, `${t.task_id}: ${t.intervals.seq.length} intervals stored`);
      assert.equal(throughput[t.task_id], t.intervals.bits_per_second.filter((v) => v != null).length,
        `${t.task_id}: every stored throughput is drawn`);
      assert.equal(latency[t.task_id], t.intervals.latency_p50_us.filter((v) => v != null).length,
        `${t.task_id}: every stored latency is drawn`);
    }
    for (const c of detail.summary.clients) {
      const row = page.locator(`main table.stats.traffic tr[data-task="${c.task_id}"]`);
      assert.equal(await row.locator('td[data-field=p50]').innerText(), c.latency_us.p50.toFixed(1));
      assert.equal(await row.locator('td[data-field=p99]').innerText(), c.latency_us.p99.toFixed(1));
      assert.equal(await row.locator('td[data-field=rate]').innerText(), `${c.requests_per_second.toFixed(0)} req/s`);
      assert.equal(await row.locator('td[data-field=errors]').innerText(), '0');
    }
    await shot('g-final-traffic.png');
  });

  test('f. an unknown run id shows the API error', async () => {
    const bad = 'ts-does-not-exist';
    const { status, body } = await api(`/experiments/${bad}`);
    assert.equal(status, 404);
    await page.goto(`${ctl.dashboard}#/experiments/${bad}`);
    await waitState('error');
    assert.equal(await page.locator('main .error-message').innerText(), body.error.message);
    assert.match(await page.locator('main .error-box').innerText(), /404/);
    await shot('f-unknown-run.png');
  });
});
