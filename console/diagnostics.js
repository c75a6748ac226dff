// diagnostics.js: remote diagnostics (#/diagnostics, #/diagnostics/ID): send a UDS request
// to a VIN or a filter, watch the answers aggregate live, and the recent batches.
import { h, replace, errorBox, spinner, empty, badge, timeEl, pager, throttle } from './dom.js';
import { get, itemsOf } from './api.js';
import { diagForm, batchView } from './diag_view.js';

export async function render(ctx) {
  const id = ctx.params.id;
  const recent = h('div', { dataset: { test: 'diag-recent' } }, spinner());
  let offset = 0;
  const loadRecent = async () => {
    let page;
    try { page = await get('/api/v1/diagnostics', { limit: 15, offset }); } catch (e) { if (ctx.alive()) replace(recent, errorBox(e)); return; }
    if (!ctx.alive()) return;
    const items = itemsOf(page);
    replace(recent, items.length ? h('table', { class: 'grid compact' },
      h('thead', null, h('tr', null, ['When', 'Request', 'ECU', 'Vehicles', 'Answers', 'State'].map((x) => h('th', { text: x })))),
      h('tbody', null, items.map((b) => {
        const c = b.counts || {};
        return h('tr', { class: b.id === id ? 'sel' : '' },
          h('td', null, h('a', { href: '#/diagnostics/' + encodeURIComponent(b.id) }, timeEl(b.created_ms))),
          h('td', null, h('code', { text: (b.request || '').replace(/(..)(?=.)/g, '$1 ') })),
          h('td', null, h('code', { text: b.ecu_id })),
          h('td', { class: 'num', text: String(b.targets ?? '') }),
          h('td', { class: 'small', text: Object.entries(c).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(' · ') }),
          h('td', null, badge(b.state)));
      }))) : empty('No diagnostic requests yet.'),
    pager(page, (o) => { offset = o; loadRecent(); }));
  };
  const current = h('div');
  replace(ctx.root,
    h('div', { class: 'page-head' }, h('h1', { text: 'Diagnostics' }),
      h('p', { class: 'muted', text: 'UDS requests (ISO 14229) sent to vehicles over MQTT and DoIP; answers aggregate as they arrive.' })),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'New request' })),
      diagForm(ctx, { onSent: (b) => { location.hash = '#/diagnostics/' + encodeURIComponent(b.id); } })),
    id ? h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'Results' })), current) : null,
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'Recent requests' })), recent));
  if (id) replace(current, batchView(ctx, id, () => loadRecent()));
  ctx.on('diag', throttle(loadRecent, 1000));
  await loadRecent();
}
