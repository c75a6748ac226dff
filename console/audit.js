// audit.js: the audit log (#/audit, admins): filters actor, action, target and a time
// range, newest first, paged by the server.
import { h, replace, errorBox, spinner, empty, pager, fmtTime, debounce } from './dom.js';
import { get, itemsOf } from './api.js';

const ACTIONS = ['vehicle.register', 'vehicle.delete', 'vehicle.vci', 'vehicle.replay', 'upload.create', 'upload.delete', 'release.create',
  'release.delete', 'token.issue', 'campaign.create', 'campaign.start', 'campaign.pause', 'campaign.resume', 'campaign.cancel',
  'campaign.deploy', 'diag.request', 'apikey.create', 'apikey.revoke', 'session.create', 'session.delete'];

const toMs = (v) => (v ? new Date(v).getTime() : undefined);

export async function render(ctx) {
  const q = ctx.query;
  const actor = h('input', { type: 'text', placeholder: 'actor (apikey:NAME, vehicle:VIN)', value: q.get('actor') || '', dataset: { test: 'a-actor' } });
  const action = h('input', { type: 'text', placeholder: 'action', list: 'audit-actions', value: q.get('action') || '', dataset: { test: 'a-action' } });
  const target = h('input', { type: 'text', placeholder: 'target (VIN, id)', value: q.get('target') || '' });
  const since = h('input', { type: 'datetime-local', 'aria-label': 'from', value: q.get('since') || '' });
  const until = h('input', { type: 'datetime-local', 'aria-label': 'until', value: q.get('until') || '' });
  let offset = Number(q.get('offset')) || 0;
  const list = h('div', { dataset: { test: 'audit-list' } }, spinner());
  const count = h('span', { class: 'muted' });
  let seq = 0; // only the newest request's answer is shown
  const load = async () => {
    const mine = ++seq;
    const query = {
      limit: 50, offset, actor: actor.value.trim(), action: action.value.trim(), target: target.value.trim(),
      since_ms: toMs(since.value), until_ms: toMs(until.value),
    };
    let page;
    try { page = await get('/api/v1/audit', query); } catch (e) { if (ctx.alive() && mine === seq) replace(list, errorBox(e)); return; }
    if (!ctx.alive() || mine !== seq) return;
    const items = itemsOf(page);
    count.textContent = `${(page.total ?? items.length).toLocaleString('en')} records`;
    replace(list, items.length ? h('table', { class: 'grid compact' },
      h('thead', null, h('tr', null, ['#', 'When', 'Actor', 'Action', 'Target', 'Detail'].map((x) => h('th', { text: x })))),
      h('tbody', null, items.map((a) => h('tr', { dataset: { test: 'audit-row' } },
        h('td', { class: 'num muted', text: String(a.id) }), h('td', { class: 'nowrap', text: fmtTime(a.at_ms) }),
        h('td', null, h('code', { text: a.actor })), h('td', null, h('span', { class: 'chip', text: a.action })),
        h('td', { class: 'mono small', text: a.target || '' }),
        h('td', { class: 'mono small detail', text: a.detail ? JSON.stringify(a.detail) : '' }))))) : empty('No audit record matches.'),
    pager(page, (o) => { offset = o; sync(); load(); }));
  };
  const sync = () => ctx.setQuery({ actor: actor.value.trim(), action: action.value.trim(), target: target.value.trim(), since: since.value, until: until.value, offset: offset || '' });
  const apply = debounce(() => { offset = 0; sync(); load(); }, 300);
  for (const el of [actor, action, target, since, until]) el.addEventListener('input', apply);
  replace(ctx.root,
    h('div', { class: 'page-head' }, h('h1', { text: 'Audit log' }), count),
    h('section', { class: 'card' },
      h('div', { class: 'filters' }, actor, action, target, h('span', { class: 'muted small', text: 'from' }), since, h('span', { class: 'muted small', text: 'until' }), until),
      h('datalist', { id: 'audit-actions' }, ACTIONS.map((a) => h('option', { value: a }))),
      list));
  await load();
}
