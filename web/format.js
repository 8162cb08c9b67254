// Scheme colours/labels and number/time formatting shared by the dashboard's modules.
// Numbers in the statistics table use fmtNum: fixed 3 decimals (tests compare the API's
// values with a tolerance of 0.0005 + rounding).

export const SCHEMES = {
  raw: { label: 'RAW', color: '#1f77b4' },
  ewma: { label: 'EWMA', color: '#2ca02c' },
  kalman: { label: 'Kalman', color: '#ff7f0e' },
  pid: { label: 'PID', color: '#9467bd' },
};
export const DEFAULT_SCHEMES = Object.keys(SCHEMES);

// Colours for schemes the dashboard does not know (never the four above).
const EXTRA_COLORS = ['#d62728', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
const extra = new Map();

export function schemeColor(scheme) {
  if (SCHEMES[scheme]) return SCHEMES[scheme].color;
  if (!extra.has(scheme)) extra.set(scheme, EXTRA_COLORS[extra.size % EXTRA_COLORS.length]);
  return extra.get(scheme);
}

export function schemeLabel(scheme) {
  return SCHEMES[scheme] ? SCHEMES[scheme].label : String(scheme).toUpperCase();
}

// Known schemes in the canonical order, then the others alphabetically.
export function sortSchemes(list) {
  const order = (s) => (SCHEMES[s] ? DEFAULT_SCHEMES.indexOf(s) : 100);
  return [...new Set(list)].sort((a, b) => order(a) - order(b) || a.localeCompare(b));
}

export const DASH = '—';

export function fmtNum(v, decimals = 3) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(decimals) : DASH;
}

export function fmtTime(ns) {
  if (!ns) return DASH;
  const d = new Date(Number(ns) / 1e6);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(startNs, endNs) {
  if (!startNs || !endNs) return DASH;
  const s = (Number(endNs) - Number(startNs)) / 1e9;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

// Compact label of a histogram edge in µs: 0.5, 20, 1k, -50k.
export function fmtEdge(v) {
  const a = Math.abs(v);
  if (a >= 1000) return `${v / 1000}k`;
  return String(v);
}

// Creates an element: el('td', {className: 'x', dataset: {field: 'rms'}}, 'text', child...).
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null) continue;
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'attrs') for (const [a, av] of Object.entries(v)) node.setAttribute(a, av);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}
