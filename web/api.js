// Thin client of lab-controller's HTTP API (docs/http-api.md). Every call returns parsed JSON
// or throws an ApiError whose message is the API's own `error.message` (or a readable
// description of a network / non-JSON failure). Paths are relative to the page's origin.

export class ApiError extends Error {
  constructor(message, { code = 0, status = '' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code; // HTTP status code, 0 for a network failure
    this.status = status; // the API's status word, e.g. "NOT_FOUND"
  }
}

const BASE = '/api/v1';

async function getJson(path, { signal } = {}) {
  let response;
  try {
    response = await fetch(BASE + path, { signal, headers: { Accept: 'application/json' } });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(`cannot reach the controller (${err.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    if (!response.ok) throw new ApiError(`HTTP ${response.status} ${response.statusText}`, { code: response.status });
    throw new ApiError(`bad JSON from ${path}`, { code: response.status });
  }
  if (!response.ok) {
    const e = body && body.error;
    throw new ApiError(e && e.message ? e.message : `HTTP ${response.status}`, {
      code: (e && e.code) || response.status,
      status: (e && e.status) || '',
    });
  }
  return body;
}

const enc = encodeURIComponent;

export const api = {
  experiments: (opts) => getJson('/experiments', opts),
  experiment: (id, opts) => getJson(`/experiments/${enc(id)}`, opts),
  // query: {maxPoints, keep, tasks}; maxPoints null/undefined = the server's default.
  samples: (id, { maxPoints, keep = 'error', tasks } = {}, opts) => {
    const q = new URLSearchParams();
    if (maxPoints != null) q.set('max_points', String(maxPoints));
    if (keep && keep !== 'error') q.set('keep', keep);
    for (const t of tasks || []) q.append('task', t);
    const qs = q.toString();
    return getJson(`/experiments/${enc(id)}/samples${qs ? '?' + qs : ''}`, opts);
  },
  intervals: (id, opts) => getJson(`/experiments/${enc(id)}/intervals`, opts),
  eventsUrl: (id) => `${BASE}/experiments/${enc(id)}/events`,
  csvUrl: (id) => `${BASE}/experiments/${enc(id)}/export.csv`,
};
