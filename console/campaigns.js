// campaigns.js: the campaign list (#/campaigns) with state and counts, live: a `campaign`
// or `deployment` event re-reads the page (throttled).
import { h, replace, pager, timeEl, errorBox, spinner, empty, badge, throttle } from './dom.js';
import { get, session, itemsOf } from './api.js';
import { stackBar, summary } from './campaign_parts.js';

const LIMIT = 20;

export async function render(ctx) {
  let offset = Number(ctx.query.get('offset')) || 0;
  const list = h('div', { class: 'list', dataset: { test: 'campaign-list' } }, spinner());
  const count = h('span', { class: 'muted' });
  const load = async () => {
    let page;
    try { page = await get('/api/v1/campaigns', { limit: LIMIT, offset }); } catch (e) { if (ctx.alive()) replace(list, errorBox(e)); return; }
    if (!ctx.alive()) return;
    const items = itemsOf(page);
    count.textContent = `${page.total ?? items.length} campaign${page.total === 1 ? '' : 's'}`;
    replace(list, items.length ? h('table', { class: 'grid' },
      h('thead', null, h('tr', null, ['Name', 'State', 'Progress', 'Completed', 'Failed', 'In progress', 'Vehicles', 'Created'].map((c) => h('th', { text: c })))),
      h('tbody', null, items.map((c) => {
        const sm = summary(c.counts);
        return h('tr', { dataset: { campaign: c.id, test: 'campaign-row' } },
          h('td', null, h('a', { href: '#/campaigns/' + encodeURIComponent(c.id), text: c.name }),
            c.pause_reason && c.state === 'paused' ? h('div', { class: 'muted small', text: c.pause_reason }) : null),
          h('td', null, badge(c.state)),
          h('td', { class: 'w-bar' }, stackBar(c.counts, c.total)),
          h('td', { class: 'num', text: String(sm.completed) }),
          h('td', { class: 'num' + (sm.failed ? ' bad' : ''), text: String(sm.failed) }),
          h('td', { class: 'num', text: String(sm.active + sm.pending) }),
          h('td', { class: 'num', text: String(c.total ?? 0) }),
          h('td', null, h('div', { text: (c.created_by || '').replace(/^apikey:/, '') }), timeEl(c.created_ms)));
      }))) : empty('No campaigns yet.'),
    pager(page, (o) => { offset = o; ctx.setQuery({ offset: o || '' }); load(); }));
  };
  replace(ctx.root,
    h('div', { class: 'page-head' }, h('h1', { text: 'Campaigns' }), count, h('span', { class: 'spacer' }),
      session.can('operator') ? h('a', { class: 'btn primary', href: '#/campaigns/new', text: '+ New campaign', dataset: { test: 'new-campaign' } }) : null),
    h('section', { class: 'card' }, list));
  const reload = throttle(load, 500);
  ctx.on('campaign', reload);
  ctx.on('deployment', reload);
  ctx.every(30000, reload);
  await load();
}
