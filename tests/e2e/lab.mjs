// Helpers shared by the dashboard's browser tests and bench/dashboard_bench.mjs: binaries from
// the environment, child processes stopped by PID, condition waits with deadlines, the
// controller's "listening" line, headless Debian Chromium through playwright-core.
//
// Binaries: LAB_CONTROLLER, LAB_AGENT, LABCTL, SEED_STORE (defaults: the build/ tree of this
// repository). Artifacts (logs, screenshots): LAB_ARTIFACTS_DIR (default build/test-artifacts).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const bin = {
  controller: process.env.LAB_CONTROLLER || path.join(REPO, 'build/controller/lab-controller'),
  agent: process.env.LAB_AGENT || path.join(REPO, 'build/agent/lab-agent'),
  labctl: process.env.LABCTL || path.join(REPO, 'build/labctl/labctl'),
  seedStore: process.env.SEED_STORE || path.join(REPO, 'build/bench/seed_store'),
};

export const artifactsDir = process.env.LAB_ARTIFACTS_DIR || path.join(REPO, 'build/test-artifacts');

// The launch options this machine needs (docs: .library/env/machines/cpp.md): Debian's
// Chromium, never a downloaded one; launch() makes a fresh user data dir.
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() (sync or async) until it returns a truthy value, which it returns; throws
// "timed out after Nms waiting for <what>" (with the last error, if fn threw) at the deadline.
export async function waitFor(fn, { timeout = 10000, interval = 50, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${lastErr ? `: ${lastErr.message}` : ''}`);
    }
    await sleep(interval);
  }
}

// Child processes started here; stopAll() ends them by PID (SIGTERM, then SIGKILL).
export class Processes {
  constructor(logDir) {
    this.logDir = logDir;
    this.list = [];
    this._onExit = () => {
      for (const p of this.list) if (p.exitCode === null && p.signalCode === null) try { process.kill(p.pid, 'SIGKILL'); } catch {}
    };
    process.on('exit', this._onExit);
  }

  // Starts `file args`; stdout is kept in p.stdoutText unless `lines` is set (then each line
  // goes to lines(line)), stderr in p.stderrText; both go to <logDir>/<name>.log.
  start(name, file, args, { lines } = {}) {
    fs.mkdirSync(this.logDir, { recursive: true });
    const log = fs.createWriteStream(path.join(this.logDir, `${name}.log`));
    log.write(`$ ${file} ${args.join(' ')}\n`);
    const p = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    p.name = name;
    p.stdoutText = '';
    p.stderrText = '';
    p.exited = new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
    p.on('error', (err) => log.write(`spawn error: ${err.message}\n`));
    p.stderr.on('data', (d) => { p.stderrText += d; log.write(d); });
    if (lines) {
      readline.createInterface({ input: p.stdout }).on('line', (l) => { log.write(l + '\n'); lines(l); });
    } else {
      p.stdout.on('data', (d) => { p.stdoutText += d; log.write(d); });
    }
    p.on('exit', (code, signal) => log.end(`[exit code=${code} signal=${signal}]\n`));
    this.list.push(p);
    return p;
  }

  async stop(p, graceMs = 3000) {
    if (p.exitCode !== null || p.signalCode !== null) return;
    try { process.kill(p.pid, 'SIGTERM'); } catch { return; }
    const done = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      try { process.kill(p.pid, 'SIGKILL'); } catch {}
      await p.exited;
    }
  }

  async stopAll() {
    // Newest first: agents and runs before the controller.
    await Promise.all([...this.list].reverse().map((p) => this.stop(p)));
    process.off('exit', this._onExit);
  }
}

// Starts lab-controller and resolves with its "listening" event
// ({address, port, http_port, dashboard}) and the process.
export async function startController(procs, args, { timeout = 15000 } = {}) {
  let resolveReady;
  const ready = new Promise((r) => { resolveReady = r; });
  const p = procs.start('lab-controller', bin.controller, [...args, '--output', 'json'], {
    lines: (line) => {
      try {
        const ev = JSON.parse(line);
        if (ev.event === 'listening') resolveReady(ev);
      } catch {}
    },
  });
  const ev = await Promise.race([
    ready,
    p.exited.then(({ code, signal }) => {
      throw new Error(`lab-controller exited (code ${code}, signal ${signal}) before listening: ${p.stderrText.slice(-2000)}`);
    }),
    sleep(timeout).then(() => { throw new Error(`lab-controller did not print its listening line within ${timeout} ms`); }),
  ]);
  return { proc: p, ...ev, base: `http://127.0.0.1:${ev.http_port}` };
}

export async function getJson(url) {
  const res = await fetch(url);
  const body = await res.json();
  return { status: res.status, body };
}

// Counts the pixels of `selector`'s canvas (in the page) within `tol` per channel of each
// colour: colors = {raw: '#1f77b4', ...} -> {raw: n, ...}. Pixels mostly transparent skipped.
export function countColors(page, selector, colors, tol = 40) {
  return page.evaluate(({ selector, colors, tol }) => {
    const canvas = document.querySelector(selector);
    if (!canvas) throw new Error(`no canvas at ${selector}`);
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    const rgb = Object.entries(colors).map(([k, hex]) =>
      [k, parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16), parseInt(hex.slice(5, 7), 16)]);
    const counts = Object.fromEntries(rgb.map(([k]) => [k, 0]));
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] < 160) continue;
      for (const [k, r, g, b] of rgb) {
        if (Math.abs(data[i] - r) <= tol && Math.abs(data[i + 1] - g) <= tol && Math.abs(data[i + 2] - b) <= tol) {
          counts[k]++;
          break;
        }
      }
    }
    return counts;
  }, { selector, colors, tol });
}

// "raw:12,ewma:10" -> {raw: 12, ewma: 10}
export function parsePoints(attr) {
  const out = {};
  for (const part of (attr || '').split(',').filter(Boolean)) {
    const [k, v] = part.split(':');
    out[k] = Number(v);
  }
  return out;
}
