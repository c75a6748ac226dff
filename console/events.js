// events.js: the live event stream (Server-Sent Events, GET /api/v1/events). One
// EventSource for the whole console; pages subscribe by event name. The browser's
// EventSource reconnects by itself after a network error (with Last-Event-ID); when the
// server ends the stream for good (an HTTP error such as 401), this module reconnects with
// a backoff. A `reset` event (events were missed) reloads the page's data.

const NAMES = ['deployment', 'campaign', 'presence', 'vci', 'release', 'release_delta', 'diag', 'reset'];
const subs = new Map(); // name -> Set(fn)
const stateSubs = new Set();
let es = null;
let state = 'off'; // off | connecting | live | reconnecting
let retry = 0;
let timer = null;
export const stats = { received: 0, lastAt: 0 };

function setState(s) {
  if (s === state) return;
  state = s;
  for (const fn of stateSubs) fn(s);
}

export function onState(fn) {
  stateSubs.add(fn);
  fn(state);
  return () => stateSubs.delete(fn);
}

export function on(name, fn) {
  if (!subs.has(name)) subs.set(name, new Set());
  subs.get(name).add(fn);
  return () => subs.get(name).delete(fn);
}

function dispatch(name, ev) {
  let data = {};
  try { data = ev.data ? JSON.parse(ev.data) : {}; } catch { return; }
  stats.received++;
  stats.lastAt = Date.now();
  // how long after the server's timestamp the page has it (same clock on one machine);
  // the browser tests print these figures
  if (name === 'deployment' && data.at_ms) {
    const l = (window.__pqotaEventLatency = window.__pqotaEventLatency || []);
    if (l.length < 1000) l.push(Date.now() - Number(data.at_ms));
    // and from the vehicle's own message (its timestamp), when a vehicle caused it
    const v = (window.__pqotaVehicleLatency = window.__pqotaVehicleLatency || []);
    if (data.vehicle_ms && v.length < 1000) v.push(Date.now() - Number(data.vehicle_ms));
  }
  const set = subs.get(name);
  if (set) for (const fn of [...set]) {
    try { fn(data, ev); } catch (e) { console.error('event handler', name, e); }
  }
}

let onClosed = null;
// fn() after the server refused the stream (an error answer, such as 401)
export function setOnClosed(fn) {
  onClosed = fn;
}

export function connect() {
  if (es) return;
  clearTimeout(timer);
  setState(retry ? 'reconnecting' : 'connecting');
  es = new EventSource('/api/v1/events');
  const after = retry; // a new EventSource after a closed one resumes from nothing
  es.onopen = () => {
    retry = 0;
    setState('live');
    if (after) dispatch('reset', { data: '{}' }); // what came meanwhile was missed
  };
  es.onerror = () => {
    if (!es) return;
    if (es.readyState === EventSource.CLOSED) {
      // the browser gave up (the server answered with an error): try again later
      es.close();
      es = null;
      retry++;
      setState('reconnecting');
      timer = setTimeout(connect, Math.min(30000, 1000 * 2 ** Math.min(retry, 5)));
      if (onClosed) onClosed(); // e.g. the session ended: the console goes to sign-in
    } else {
      setState('reconnecting'); // the browser reconnects by itself
    }
  };
  for (const n of NAMES) es.addEventListener(n, (ev) => dispatch(n, ev));
}

export function disconnect() {
  clearTimeout(timer);
  if (es) es.close();
  es = null;
  retry = 0;
  setState('off');
}
