// uploader.js: a file up to the server through the resumable upload API (docs/api.md 7):
// POST /api/v1/uploads {size, sha256}, then PUT pieces of at most PIECE bytes at ?offset=.
// A piece that fails (a dropped connection, a 5xx, a timeout) is not fatal: the uploader asks
// the server where the upload stands (GET /api/v1/uploads/{id}: received) and goes on from
// there, with a growing pause between tries. An upload this browser started earlier for the
// same file (a reload, a crash) is resumed too. XMLHttpRequest for the pieces, so that the
// progress bar moves within a piece too.
import { api, session, ApiError } from './api.js';

export const PIECE = 4 * 1024 * 1024;
// Uploads in progress in this page: while there are any, leaving the page asks first.
export const activity = { uploads: 0 };
const LEAVE = 'leave'; // the abort reason of a page left mid-upload: the upload stays resumable
function onBeforeUnload(e) {
  if (activity.uploads > 0) { e.preventDefault(); e.returnValue = ''; }
}
window.addEventListener('beforeunload', onBeforeUnload);

const HASH_LIMIT = 256 * 1024 * 1024; // above this, no SHA-256 in the browser (memory)
const MAX_TRIES = 8;
const STALL_MS = 20000;

export async function sha256Hex(file) {
  const buf = await file.arrayBuffer();
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

function putPiece(id, offset, blob, onBytes, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/api/v1/uploads/${encodeURIComponent(id)}?offset=${offset}`);
    xhr.withCredentials = true;
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    if (session.csrf) xhr.setRequestHeader('X-CSRF-Token', session.csrf);
    xhr.timeout = 120000;
    // a piece that stops moving (a half-dead connection) is given up after STALL_MS without
    // progress and sent again, instead of waiting for the whole timeout
    let stalled = false, timer = 0;
    const watch = () => {
      clearTimeout(timer);
      timer = setTimeout(() => { stalled = true; xhr.abort(); }, STALL_MS);
    };
    xhr.upload.onprogress = (e) => { watch(); onBytes(e.loaded); };
    xhr.upload.onload = watch; // sent: the answer should follow soon
    const fail = (what) => { clearTimeout(timer); reject(new ApiError(0, 'network', what)); };
    xhr.onerror = () => fail('the connection was lost');
    xhr.ontimeout = () => fail('the piece timed out');
    xhr.onabort = () => stalled ? fail(`no progress for ${STALL_MS / 1000} s`)
      : (clearTimeout(timer), reject(new DOMException('aborted', 'AbortError')));
    xhr.onloadend = () => clearTimeout(timer);
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* HTML from the HTTP library */ }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(data);
      const err = (data && data.error) || {};
      const e = new ApiError(xhr.status, err.code, err.message || `HTTP ${xhr.status}`, data);
      if (xhr.status === 429) e.retryAfter = Number(xhr.getResponseHeader('Retry-After')) || 1;
      reject(e);
    };
    if (signal && signal.aborted) return reject(new DOMException('aborted', 'AbortError'));
    if (signal) signal.addEventListener('abort', () => xhr.abort(), { once: true });
    watch();
    xhr.send(blob);
  });
}

const sleep = (ms, signal) => new Promise((res, rej) => {
  if (signal && signal.aborted) return rej(new DOMException('aborted', 'AbortError'));
  const t = setTimeout(res, ms);
  if (signal) signal.addEventListener('abort', () => { clearTimeout(t); rej(new DOMException('aborted', 'AbortError')); }, { once: true });
});

// Uploads in progress, remembered in this browser by file (name, size, modification time), so
// that choosing the same file again after a reload, a crash or a closed tab goes on where
// the server's upload stands instead of starting over.
const KEY = (file) => `pqota.upload:${file.name}:${file.size}:${file.lastModified}`;
function remembered(file) {
  try { return JSON.parse(localStorage.getItem(KEY(file)) || 'null'); } catch { return null; }
}
function remember(file, id) {
  try { localStorage.setItem(KEY(file), JSON.stringify({ id, at: Date.now() })); } catch { /* private mode */ }
}
export function forget(file) {
  try { localStorage.removeItem(KEY(file)); } catch { /* private mode */ }
}

// The server's upload this browser started for the file, if it is still there.
async function earlier(file) {
  const r = remembered(file);
  if (!r || typeof r.id !== 'string') return null;
  try {
    const st = await api('GET', `/api/v1/uploads/${encodeURIComponent(r.id)}`);
    if (st && st.size === file.size) return st;
  } catch (e) {
    if (e.status !== 404) throw e;
  }
  forget(file); // used up (a release was made of it), deleted, or another file's
  return null;
}

// Stops an upload because its page is left (not cancelled): the server keeps it, and choosing
// the same file again resumes it.
export function leaveUpload(controller) {
  controller.abort(LEAVE);
}

// upload(file, {onProgress({sent,total,rate,phase,note}), signal}) -> the upload id
export async function upload(file, opts = {}) {
  const total = file.size;
  const progress = (sent, phase, note) => {
    const secs = (performance.now() - t0) / 1000;
    if (opts.onProgress) opts.onProgress({ sent, total, rate: secs > 0.2 ? (sent - startAt) / secs : 0, phase, note });
  };
  let t0 = performance.now(), startAt = 0;
  const stop = () => { if (opts.signal && opts.signal.aborted) throw new DOMException('aborted', 'AbortError'); };
  stop();
  let up = await earlier(file);
  stop();
  if (up) {
    progress(up.received, 'uploading', `resuming an earlier upload at ${up.received} bytes`);
  } else {
    let sha = null;
    if (total <= HASH_LIMIT) {
      progress(0, 'hashing');
      sha = await sha256Hex(file);
      stop(); // cancelled while hashing: nothing was created on the server
    }
    up = await api('POST', '/api/v1/uploads', { body: sha ? { size: total, sha256: sha } : { size: total } });
    remember(file, up.id);
  }
  const id = up.id;
  activity.uploads++;
  try {
    stop();
    return await send(file, up, progress, opts, () => { t0 = performance.now(); startAt = up.received || 0; });
  } catch (e) {
    // cancelled by the operator: the partial upload is removed (best effort)
    if (e.name === 'AbortError' && !(opts.signal && opts.signal.reason === LEAVE)) {
      forget(file);
      api('DELETE', `/api/v1/uploads/${encodeURIComponent(id)}`).catch(() => {});
    }
    throw e;
  } finally {
    activity.uploads--;
  }
}

async function send(file, up, progress, opts, restart) {
  const total = file.size, id = up.id;
  let offset = up.received || 0, failures = 0, resumed = 0;
  restart();
  progress(offset, 'uploading');
  while (offset < total) { // (an empty file is complete as created)
    const end = Math.min(total, offset + PIECE);
    try {
      const r = await putPiece(id, offset, file.slice(offset, end), (n) => progress(offset + n, 'uploading'), opts.signal);
      offset = r && typeof r.received === 'number' ? r.received : end;
      failures = 0;
      progress(offset, 'uploading');
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      if (e.code === 'offset_mismatch' && e.body && typeof e.body.received === 'number' && resumed < 64) {
        offset = e.body.received;
        resumed++;
        continue;
      }
      if ([400, 401, 403, 404, 413].includes(e.status)) throw e;
      failures++;
      if (failures > MAX_TRIES) throw new ApiError(e.status, e.code || 'network', `upload failed after ${MAX_TRIES} tries: ${e.message}`);
      const wait = Math.min(8000, 250 * 2 ** failures) + (e.retryAfter ? e.retryAfter * 1000 : 0);
      progress(offset, 'retrying', `${e.message}; retrying in ${(wait / 1000).toFixed(1)} s (try ${failures + 1})`);
      await sleep(wait, opts.signal);
      try {
        const st = await api('GET', `/api/v1/uploads/${encodeURIComponent(id)}`, { signal: opts.signal });
        offset = st.received;
        resumed++;
        progress(offset, 'uploading', `resumed at ${offset} bytes`);
      } catch (e2) {
        if (e2.name === 'AbortError' || e2.status === 404 || e2.status === 401 || e2.status === 403) throw e2;
        // the server is still unreachable: the next PUT tries again (a wrong offset is answered)
      }
    }
  }
  if (opts.signal && opts.signal.aborted) throw new DOMException('aborted', 'AbortError');
  progress(total, 'uploaded');
  return { id, resumed };
}
