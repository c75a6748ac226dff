// api.js: the one way the console talks to the server. Same-origin fetches with the session
// cookie; every request that changes state carries the CSRF token of the session; errors
// become ApiError with the server's {"error":{"code","message"}}; a 401 ends the session.

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
    this.body = body || null;
  }
}

const ROLES = { viewer: 1, operator: 2, admin: 3 };

export const session = {
  user: null, // {name, role, key_id, expires_ms}
  csrf: null,
  onUnauthenticated: null, // set by app.js: back to the sign-in page
  can(role) {
    return !!this.user && (ROLES[this.user.role] || 0) >= ROLES[role];
  },
};

function query(q) {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '') continue;
    p.set(k, String(v));
  }
  const s = p.toString();
  return s ? '?' + s : '';
}

async function parse(res) {
  const ct = res.headers.get('content-type') || '';
  if (res.status === 204) return null;
  if (ct.includes('application/json')) {
    try { return await res.json(); } catch { return null; }
  }
  const text = await res.text().catch(() => '');
  return { text };
}

// api(method, path, {body, query, raw, quiet401}): the parsed JSON answer; throws ApiError
export async function api(method, path, opts = {}) {
  const headers = { Accept: 'application/json' };
  let body;
  if (opts.raw !== undefined) {
    body = opts.raw;
    headers['Content-Type'] = 'application/octet-stream';
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  }
  if (method !== 'GET' && method !== 'HEAD' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  let res;
  try {
    res = await fetch(path + query(opts.query), {
      method, headers, body, credentials: 'same-origin', cache: 'no-store', signal: opts.signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'the server could not be reached: ' + e.message);
  }
  const data = await parse(res);
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    const msg = err.message || (data && data.text ? data.text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200) : '') || res.statusText;
    // another tab signed in again meanwhile (a new cookie, a new token): take this
    // session's token once and try again
    if (res.status === 403 && err.code === 'csrf' && !opts.csrfRetried && session.user) {
      const again = await resume().catch(() => null);
      if (again) return api(method, path, { ...opts, csrfRetried: true });
    }
    const e = new ApiError(res.status, err.code || '', msg, data);
    if (res.status === 429) e.retryAfter = Number(res.headers.get('retry-after')) || 1;
    if (res.status === 401 && !opts.quiet401 && session.user) {
      session.user = null;
      session.csrf = null;
      if (session.onUnauthenticated) session.onUnauthenticated();
    }
    throw e;
  }
  return data;
}

export const get = (path, q, o = {}) => api('GET', path, { ...o, query: q });
export const post = (path, body, o = {}) => api('POST', path, { ...o, body });
export const del = (path, o = {}) => api('DELETE', path, o);

// --- the session -------------------------------------------------------------------------

function takeSession(s) {
  session.user = { name: s.name, role: s.role, key_id: s.key_id, expires_ms: s.expires_ms };
  session.csrf = s.csrf_token || null;
  return session.user;
}

export async function signIn(apiKey) {
  const s = await api('POST', '/api/v1/session', { body: { api_key: apiKey }, quiet401: true });
  return takeSession(s);
}

// the session of the cookie, after a page load; null when there is none
export async function resume() {
  try {
    return takeSession(await api('GET', '/api/v1/session', { quiet401: true }));
  } catch (e) {
    if (e.status === 401 || e.status === 404) return null;
    throw e;
  }
}

// Ends the session on the server. A failure (other than a session that had already ended)
// throws and leaves the console signed in: the cookie would still be valid.
export async function signOut() {
  try {
    await api('DELETE', '/api/v1/session', { quiet401: true });
  } catch (e) {
    if (e.status !== 401) throw e;
  }
  session.user = null;
  session.csrf = null;
}

// a list page: accepts {"items"} and the campaign list's {"campaigns"}
export function itemsOf(page) {
  if (!page) return [];
  return page.items || page.campaigns || page.results || [];
}
