// campaign.js: one campaign (#/campaigns/ID), live: state and auto-pause reason, the
// actions (start and cancel confirmed first), counts per state and per phase, the progress
// chart (GET .../progress, then each `deployment` event), and the deployments filterable by
// state with the cause of each failure.
import { h, replace, clear, errorBox, spinner, empty, badge, timeEl, fmtTime, toast, confirmDialog, throttle, pager } from './dom.js';
import { get, post, session, itemsOf } from './api.js';
import { STATES, FAILED, countTiles, stackBar, transitionChain, drawChart, pointsFromProgress, summary } from './campaign_parts.js';

const ACTIONS = [
  { a: 'start', from: ['draft'], label: 'Start', cls: 'primary', confirm: ['Start this campaign?', 'The targeted vehicles are worked out now and notified phase by phase.'] },
  { a: 'pause', from: ['running'], label: 'Pause' },
  { a: 'resume', from: ['paused'], label: 'Resume', cls: 'primary' },
  { a: 'cancel', from: ['draft', 'running', 'paused'], label: 'Cancel campaign', cls: 'danger', confirm: ['Cancel this campaign?', 'Every deployment not yet finished is cancelled, and notified vehicles are told to stop. This cannot be undone.'] },
];
const FILTERS = [['', 'all'], ['failed,rolled_back,timed_out', 'failed'], ['failed', 'failed only'], ['rolled_back', 'rolled back'], ['timed_out', 'timed out'],
  ['completed', 'completed'], ['pending', 'pending'], ['notified,accepted,downloading,downloaded,installing,installed', 'in progress'], ['postponed,declined', 'postponed / declined'], ['cancelled', 'cancelled']];

function depCause(d) {
  return d.cause || d.last_cause || d.failure_cause || (d.last_transition && d.last_transition.cause) || '';
}

export async function render(ctx) {
  const id = ctx.params.id;
  replace(ctx.root, spinner());
  let c = await get('/api/v1/campaigns/' + encodeURIComponent(id));
  let campSeq = 0; // reads of the campaign: an answer older than the newest one is dropped
  if (!ctx.alive()) return;

  const head = h('div', { class: 'page-head' });
  const banner = h('div');
  const tiles = h('div');
  const phasesBox = h('div');
  const chartBox = h('div', { class: 'chart-box', dataset: { test: 'chart' } });
  const depBox = h('div', { dataset: { test: 'deployments' } });
  const info = h('div', { class: 'kv' });
  let filter = ctx.query.get('state') || '';
  let depOffset = 0;
  let points = [];
  let counts = { ...(c.counts || {}) };
  const relNames = {}; // release id -> release (for the settings)

  const drawHead = () => {
    const acts = session.can('operator') ? ACTIONS.filter((x) => x.from.includes(c.state)).map((x) => h('button', {
      type: 'button', class: 'btn ' + (x.cls || ''), text: x.label, dataset: { test: 'action-' + x.a },
      onclick: async (e) => {
        if (x.confirm && !(await confirmDialog(x.confirm[0], x.confirm[1], x.label, x.a === 'cancel'))) return;
        e.target.disabled = true;
        try {
          const after = await post(`/api/v1/campaigns/${encodeURIComponent(id)}/${x.a}`); // (no body)
          campSeq++; // a read started before the action must not overwrite its answer
          c = after;
          drawAll();
          loadDeps();
          loadProgress();
        } catch (ex) { toast(`${x.a}: ${ex.message}`, 'error', 6000); e.target.disabled = false; }
      },
    })) : [];
    replace(head,
      h('a', { href: '#/campaigns', class: 'back', text: '‹ Campaigns' }),
      h('h1', { text: c.name }), h('span', { dataset: { test: 'campaign-state' } }, badge(c.state)),
      h('span', { class: 'spacer' }), acts);
    replace(banner, c.pause_reason && c.state === 'paused'
      ? h('div', { class: 'alert warn', role: 'status', dataset: { test: 'pause-reason' } },
        h('strong', { text: c.pause_reason.startsWith('auto_paused') ? 'Paused automatically: ' : 'Paused: ' }), h('span', { text: c.pause_reason }))
      : c.state === 'cancelled' ? h('div', { class: 'alert', text: 'This campaign was cancelled.' })
        : c.state === 'completed' ? (() => {
          const sm = summary(c.counts);
          return h('div', { class: sm.failed ? 'alert warn' : 'alert ok', dataset: { test: 'completed' } },
            `Completed: every deployment has ended: ${sm.completed} of ${c.total} completed`,
            sm.failed ? `, ${sm.failed} failed, rolled back or timed out (filter "failed" below for the causes).` : '.');
        })() : null);
  };
  const drawInfo = () => {
    const p = c.policy || {};
    const t = c.target || {};
    const tgt = Object.keys(t).length ? Object.entries(t).map(([k, v]) => `${k}: ${Array.isArray(v) ? (v.length > 5 ? v.slice(0, 5).join(', ') + ` … (${v.length})` : v.join(', ')) : v}`).join(' · ') : 'every vehicle that needs the releases';
    replace(info,
      h('div', null, h('span', { class: 'k', text: 'Releases' }), h('span', null, (c.release_ids || []).map((r) => relNames[r]
        ? h('span', { class: 'chip', title: `${r} · ${relNames[r].ecu_id} · ${relNames[r].hardware_id}` }, relNames[r].title,
          relNames[r].title.includes(relNames[r].version) ? null : [' ', h('span', { class: 'version', text: relNames[r].version })])
        : h('code', { class: 'chip', text: r.slice(0, 8), title: r })))),
      h('div', null, h('span', { class: 'k', text: 'Target' }), h('span', { text: tgt })),
      h('div', null, h('span', { class: 'k', text: 'Consent' }), h('span', { text: p.consent_required ? 'required' : 'not required' })),
      h('div', null, h('span', { class: 'k', text: 'Deadline' }), h('span', { text: p.deadline || 'none' })),
      h('div', null, h('span', { class: 'k', text: 'Install order' }), h('span', { text: (p.install_order || []).join(' → ') || 'any' })),
      h('div', null, h('span', { class: 'k', text: 'Created' }), h('span', { text: `${fmtTime(c.created_ms)} by ${(c.created_by || '').replace(/^apikey:/, '')}` })),
      h('div', null, h('span', { class: 'k', text: 'Started' }), h('span', { text: c.started_ms ? fmtTime(c.started_ms) : 'not yet' })));
  };
  const drawCounts = () => {
    replace(tiles, countTiles(counts, c.total), stackBar(counts, c.total));
    const ph = c.phases || [];
    replace(phasesBox, ph.length ? h('table', { class: 'grid compact', dataset: { test: 'phases' } },
      h('thead', null, h('tr', null, ['Phase', 'Size', 'Active', 'Progress', 'Completed', 'Failed', 'Pause above', 'Next at'].map((x) => h('th', { text: x })))),
      h('tbody', null, ph.map((p) => {
        const sm = summary(p.counts);
        return h('tr', { class: p.active ? '' : 'muted' },
          h('td', { text: String(p.phase) }),
          h('td', { text: `${p.size ?? 0}` + (p.percent !== undefined ? ` (to ${p.percent} %)` : p.count !== undefined ? ` (${p.count} asked)` : '') }),
          h('td', { text: p.active ? 'yes' : 'no' }),
          h('td', { class: 'w-bar' }, stackBar(p.counts, p.size)),
          h('td', { class: 'num', text: String(sm.completed) }), h('td', { class: 'num' + (sm.failed ? ' bad' : ''), text: String(sm.failed) }),
          h('td', { class: 'num', text: `${Math.round((p.error_threshold ?? 0.1) * 1000) / 10} %` }),
          h('td', { class: 'num', text: `${Math.round((p.success_threshold ?? 1) * 1000) / 10} %` }));
      }))) : null);
  };
  const drawAll = () => { counts = { ...(c.counts || {}) }; drawHead(); drawInfo(); drawCounts(); };
  const live = () => c.state === 'running' || c.state === 'paused';
  const addPoint = (t) => {
    const sm = summary(counts);
    const last = points[points.length - 1];
    // a point at the time of the change (now while the campaign runs; an ended campaign's
    // last change is its updated_ms), and none when nothing changed after the end
    const p = { t: t || (live() ? Date.now() : c.updated_ms || Date.now()), completed: sm.completed, failed: sm.failed, active: sm.active + sm.pending };
    const same = last && last.completed === p.completed && last.failed === p.failed && last.active === p.active;
    if (!(same && !live())) {
      if (last && p.t < last.t) p.t = last.t;
      points.push(p);
      if (points.length > 5000) points = points.slice(-5000);
    }
    drawChart(chartBox, points, c.total);
  };

  async function loadProgress() {
    try {
      const p = await get(`/api/v1/campaigns/${encodeURIComponent(id)}/progress`);
      if (!ctx.alive()) return;
      points = pointsFromProgress(p).map((x) => ({ ...x }));
    } catch (e) {
      if (!ctx.alive()) return;
      points = c.started_ms ? [{ t: c.started_ms, completed: 0, failed: 0, active: c.total || 0 }] : [];
    }
    addPoint();
  }

  const depChain = async (d, cell) => {
    try {
      const full = await get(`/api/v1/campaigns/${encodeURIComponent(id)}/vehicles/${encodeURIComponent(d.vin)}`);
      return full;
    } catch (e) { replace(cell, errorBox(e)); return null; }
  };

  let depSeq = 0; // only the newest request's answer is shown (a filter click races a reload)
  async function loadDeps() {
    let page;
    const seq = ++depSeq;
    try {
      page = await get(`/api/v1/campaigns/${encodeURIComponent(id)}/deployments`, { state: filter || undefined, limit: 50, offset: depOffset });
    } catch (e) {
      if (!ctx.alive() || seq !== depSeq) return;
      replace(depBox, e.status === 404 && e.code === 'not_found' && /route|path/i.test(e.message) ? empty('This server does not list a campaign\'s deployments yet.') : errorBox(e));
      return;
    }
    if (!ctx.alive() || seq !== depSeq) return;
    const items = itemsOf(page);
    const chips = h('div', { class: 'filter-chips', role: 'group', 'aria-label': 'filter by state' }, FILTERS.map(([v, l]) =>
      h('button', { type: 'button', class: 'chip btn-chip' + (v === filter ? ' on' : ''), text: l, dataset: { test: 'dep-filter-' + l.replace(/[^a-z]+/g, '-') },
        onclick: () => { filter = v; depOffset = 0; ctx.setQuery({ state: v }); loadDeps(); } })));
    const body = h('tbody');
    for (const d of items) {
      const causeCell = h('td', { class: 'cause', dataset: { test: 'dep-cause' } });
      const cause = depCause(d);
      const failedish = FAILED.includes(d.state) || d.state === 'declined';
      if (cause) causeCell.textContent = cause;
      const row = h('tr', { dataset: { vin: d.vin, state: d.state, test: 'dep-row' } },
        h('td', null, h('a', { href: '#/fleet/' + encodeURIComponent(d.vin), class: 'mono', text: d.vin })),
        h('td', null, badge(d.state)),
        h('td', { class: 'num', text: String(d.phase ?? '') }),
        h('td', null, d.error_code ? h('code', { class: 'err-code', text: d.error_code }) : h('span', { class: 'muted', text: '—' })),
        causeCell,
        h('td', null, timeEl(d.updated_ms)),
        h('td', null, h('button', { type: 'button', class: 'btn small ghost', text: 'history', onclick: async (e) => {
          const next = row.nextSibling;
          if (next && next.classList.contains('chain-row')) { next.remove(); return; }
          const cell = h('td', { colspan: 7 }, spinner());
          row.after(h('tr', { class: 'chain-row' }, cell));
          const full = await depChain(d, cell);
          if (full) replace(cell, transitionChain(full));
        } })));
      body.appendChild(row);
      // a failure without its cause in the list: the cause is the last transition's
      if (failedish && !cause) {
        depChain(d, causeCell).then((full) => {
          if (!full) return;
          const tr = full.transitions || [];
          const last = [...tr].reverse().find((t) => t.to === d.state) || tr[tr.length - 1];
          causeCell.textContent = (last && last.cause) || full.error_code || '';
        });
      }
    }
    replace(depBox, chips, items.length ? h('table', { class: 'grid compact' },
      h('thead', null, h('tr', null, ['VIN', 'State', 'Phase', 'Error', 'Cause', 'Updated', ''].map((x) => h('th', { text: x })))), body)
      : empty(filter ? 'No deployment in this state.' : 'No deployments (the campaign is not started).'),
    page.total > (page.limit || 50) ? pager(page, (o) => { depOffset = o; loadDeps(); }) : null);
  }

  replace(ctx.root, head, banner,
    h('section', { class: 'card' }, tiles),
    h('div', { class: 'cols-2 wide-left' },
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'Progress' })), chartBox),
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'Settings' })), info)),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'Phases' })), phasesBox),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'Deployments' })), depBox));
  drawAll();
  drawChart(chartBox, points, c.total);
  Promise.all((c.release_ids || []).map((r) => get('/api/v1/releases/' + encodeURIComponent(r)).then((x) => { relNames[r] = x; }, () => {})))
    .then(() => { if (ctx.alive()) drawInfo(); });

  const reloadCampaign = throttle(async () => {
    const seq = ++campSeq;
    let fresh;
    try {
      fresh = await get('/api/v1/campaigns/' + encodeURIComponent(id));
    } catch { return; }
    if (!ctx.alive() || seq !== campSeq) return; // a newer read is on its way
    c = fresh;
    drawAll();
    addPoint();
  }, 400);
  const reloadDeps = throttle(loadDeps, 600);
  ctx.on('deployment', (ev) => {
    if (ev.campaign_id !== id) return;
    // the campaign is re-read (at most 2.5 times a second) for its counts, which give the
    // next point of the chart: counting the events here would race with the answer of an
    // action and with the re-reads
    reloadCampaign();
    reloadDeps();
  });
  ctx.on('campaign', (ev) => {
    if (ev.id !== id) return;
    if (ev.state && ev.state !== c.state) toast(`Campaign is now ${ev.state}${ev.pause_reason ? ': ' + ev.pause_reason : ''}`, ev.state === 'paused' ? 'error' : 'info', 6000);
    c = { ...c, state: ev.state || c.state, pause_reason: ev.pause_reason ?? c.pause_reason };
    drawHead();
    reloadCampaign();
    reloadDeps();
  });
  ctx.every(30000, () => { reloadCampaign(); reloadDeps(); });
  await Promise.all([loadProgress(), loadDeps()]);
}
