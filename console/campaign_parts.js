// campaign_parts.js: pieces of the campaign pages: deployment states, count tiles, the
// transition chain of one deployment, and the progress chart (SVG built with DOM calls).
import { h, s, clear, badge, fmtTime } from './dom.js';

export const STATES = ['pending', 'notified', 'accepted', 'downloading', 'downloaded', 'installing', 'installed',
  'completed', 'postponed', 'declined', 'failed', 'rolled_back', 'cancelled', 'timed_out'];
export const FAILED = ['failed', 'rolled_back', 'timed_out'];
export const ENDED = ['completed', 'declined', 'failed', 'rolled_back', 'cancelled', 'timed_out'];
export const ACTIVE = ['notified', 'accepted', 'downloading', 'downloaded', 'installing', 'installed', 'postponed'];

const sum = (counts, keys) => keys.reduce((a, k) => a + ((counts && counts[k]) || 0), 0);

export function summary(counts) {
  return {
    completed: sum(counts, ['completed']),
    failed: sum(counts, FAILED),
    active: sum(counts, ACTIVE),
    pending: sum(counts, ['pending']),
    other: sum(counts, ['declined', 'cancelled']),
  };
}

export function countTiles(counts, total) {
  const keys = STATES.filter((k) => (counts && counts[k]) || ['pending', 'completed', 'failed'].includes(k));
  return h('div', { class: 'tiles', dataset: { test: 'counts' } },
    h('div', { class: 'tile' }, h('div', { class: 'tile-n', text: String(total ?? 0) }), h('div', { class: 'tile-l', text: 'vehicles' })),
    keys.map((k) => h('div', { class: 'tile st-' + k, dataset: { test: 'count-' + k } },
      h('div', { class: 'tile-n', text: String((counts && counts[k]) || 0) }), h('div', { class: 'tile-l', text: k.replace('_', ' ') }))));
}

// a stacked bar of a counts object: completed / active / failed / rest
export function stackBar(counts, total) {
  const t = total || 0;
  const sm = summary(counts);
  const seg = (n, cls, label) => {
    if (!t || !n) return null;
    const el = h('span', { class: 'seg ' + cls, title: `${label}: ${n}` });
    el.style.width = ((100 * n) / t).toFixed(2) + '%';
    return el;
  };
  return h('div', { class: 'stack', title: `${sm.completed} of ${t} completed` },
    seg(sm.completed, 'ok', 'completed'), seg(sm.active, 'run', 'in progress'), seg(sm.failed, 'bad', 'failed'), seg(sm.other, 'grey', 'declined or cancelled'));
}

// the transition chain of a deployment (GET /api/v1/campaigns/{id}/vehicles/{vin})
export function transitionChain(d) {
  const tr = d.transitions || [];
  return h('div', { class: 'chain-wrap' },
    d.targets && d.targets.length ? h('div', { class: 'targets muted small' }, d.targets.map((t) =>
      h('div', null, h('code', { text: t.ecu_id }), ` ${t.software_type || ''} ${t.from_version || '?'} → ${t.to_version || '?'} · ${t.package || ''}`))) : null,
    h('ol', { class: 'chain', dataset: { test: 'chain' } }, tr.map((t) =>
      h('li', { class: FAILED.includes(t.to) ? 'bad' : '' },
        badge(t.to), h('span', { class: 'muted small', text: ' ' + fmtTime(t.at_ms) }),
        t.cause ? h('div', { class: 'cause', text: t.cause }) : null))));
}

// --- the progress chart --------------------------------------------------------------------

// points: [{t, completed, failed, active}] sorted by t; total: the y range
export function chart(points, total) {
  const W = 640, H = 200, L = 36, R = 10, T = 10, B = 24;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'deployments over time' });
  const ymax = Math.max(1, total || 0, ...points.map((p) => p.completed + p.failed + p.active));
  if (points.length === 0) {
    svg.appendChild(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis', text: 'no data yet' }));
    return svg;
  }
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1000);
  const x = (t) => L + ((W - L - R) * (t - t0)) / (t1 - t0);
  const y = (v) => T + (H - T - B) * (1 - v / ymax);
  // grid and axes
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const v = Math.round(ymax * f);
    svg.appendChild(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'gridline' }));
    svg.appendChild(s('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis', text: String(v) }));
  }
  const secs = (t1 - t0) / 1000;
  const fmt = (t) => (secs < 20 ? `${((t - t0) / 1000).toFixed(1)} s` : secs < 600 ? `${Math.round((t - t0) / 1000)} s` : fmtTime(t).slice(11, 16));
  for (const f of [0, 0.5, 1]) {
    const t = t0 + (t1 - t0) * f;
    svg.appendChild(s('text', { x: x(t), y: H - 6, 'text-anchor': f === 0 ? 'start' : f === 1 ? 'end' : 'middle', class: 'axis', text: fmt(t) }));
  }
  // step lines (a count holds until the next change)
  const line = (key, cls) => {
    let d = '';
    points.forEach((p, i) => {
      const px = x(p.t).toFixed(1), py = y(p[key]).toFixed(1);
      if (i === 0) d += `M${px},${py}`;
      else d += `H${px}V${py}`;
    });
    d += `H${(W - R).toFixed(1)}`;
    return s('path', { d, class: 'series ' + cls, fill: 'none' });
  };
  svg.appendChild(line('active', 'run'));
  svg.appendChild(line('failed', 'bad'));
  svg.appendChild(line('completed', 'ok'));
  return svg;
}

export function legend() {
  return h('div', { class: 'legend' },
    h('span', { class: 'lg ok', text: 'completed' }), h('span', { class: 'lg run', text: 'in progress' }), h('span', { class: 'lg bad', text: 'failed / rolled back / timed out' }));
}

// progress from GET /api/v1/campaigns/{id}/progress, whatever its exact shape: a list of
// points each with a time (at_ms or t_ms) and either a counts object or the states as fields
export function pointsFromProgress(p) {
  const list = Array.isArray(p) ? p : (p && (p.points || p.items || p.series || p.progress)) || [];
  return list.map((e) => {
    const c = e.counts || e;
    const sm = summary(c);
    return { t: Number(e.at_ms ?? e.t_ms ?? e.t ?? 0), completed: sm.completed, failed: sm.failed, active: sm.active };
  }).filter((e) => e.t > 0).sort((a, b) => a.t - b.t);
}

// clear a container and put the chart in it
export function drawChart(box, points, total) {
  clear(box);
  box.appendChild(chart(points, total));
  box.appendChild(legend());
}
