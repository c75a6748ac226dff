// fleet.js: the fleet (#/fleet): one server page of vehicles at a time (limit 50, the
// server filters and counts), with the online dot kept live by `presence` events. Filters:
// online, model, VIN prefix, and an ECU at a version. The time to the first rendered page
// is kept in window.__pqotaFleetRenderMs (the browser test prints it).
import { h, replace, clear, pager, timeEl, errorBox, spinner, empty, badge, debounce } from './dom.js';
import { get, itemsOf } from './api.js';

const LIMIT = 50;

function campaignCell(c) {
  if (!c) return h('span', { class: 'muted', text: '—' });
  if (typeof c === 'string') return h('a', { href: '#/campaigns/' + encodeURIComponent(c), text: c.slice(0, 8) });
  const id = c.id || c.campaign_id;
  return h('span', null,
    id ? h('a', { href: '#/campaigns/' + encodeURIComponent(id), text: c.name || id.slice(0, 8) }) : h('span', { text: c.name || '' }),
    c.state ? [' ', badge(c.state)] : null);
}

export function onlineDot(online) {
  return h('span', { class: 'dot ' + (online ? 'on' : 'off'), title: online ? 'online' : 'offline', 'aria-label': online ? 'online' : 'offline', dataset: { test: 'online' } });
}

export async function render(ctx) {
  const t0 = performance.now();
  const f = {
    online: ctx.query.get('online') || '', model: ctx.query.get('model') || '', vin_prefix: ctx.query.get('vin_prefix') || '',
    ecu_id: ctx.query.get('ecu_id') || '', version: ctx.query.get('version') || '',
  };
  let offset = Number(ctx.query.get('offset')) || 0;
  let first = true;
  const rows = new Map(); // vin -> {dot cell, seen cell}
  const list = h('div', { class: 'list', dataset: { test: 'fleet-list' } });
  const total = h('span', { dataset: { test: 'fleet-total' } });
  const onlineN = h('span', { dataset: { test: 'fleet-online' } });
  const count = h('span', { class: 'muted' }, total, onlineN);

  const online = h('select', { dataset: { test: 'f-online' }, 'aria-label': 'online' },
    [['', 'online: any'], ['true', 'online'], ['false', 'offline']].map(([v, l]) => h('option', { value: v, text: l, selected: f.online === v })));
  const model = h('input', { type: 'text', maxlength: 64, placeholder: 'model', value: f.model, 'aria-label': 'model', dataset: { test: 'f-model' } });
  const prefix = h('input', { type: 'search', maxlength: 32, placeholder: 'VIN prefix', value: f.vin_prefix, 'aria-label': 'VIN prefix', dataset: { test: 'f-vin' } });
  const ecu = h('input', { type: 'text', placeholder: 'ECU (ECU_011)', value: f.ecu_id, 'aria-label': 'ECU id', class: 'narrow' });
  const ver = h('input', { type: 'text', placeholder: 'at version', value: f.version, 'aria-label': 'version', class: 'narrow' });

  async function load() {
    const want = JSON.stringify([f, offset]);
    if (!first) list.classList.add('stale');
    let page;
    try {
      const q = { limit: LIMIT, offset };
      for (const [k, v] of Object.entries(f)) if (v) q[k] = v;
      if (!(f.ecu_id && f.version)) { delete q.ecu_id; delete q.version; }
      page = await get('/api/v1/vehicles', q);
    } catch (e) {
      if (ctx.alive()) { list.classList.remove('stale'); replace(list, errorBox(e)); }
      return;
    }
    if (!ctx.alive() || want !== JSON.stringify([f, offset])) return;
    const items = itemsOf(page);
    rows.clear();
    total.textContent = `${(page.total ?? items.length).toLocaleString('en')} vehicle${page.total === 1 ? '' : 's'}`;
    onlineN.textContent = '';
    if (!f.online && page.total) {
      const q = { limit: 1, online: 'true' };
      for (const k of ['model', 'vin_prefix']) if (f[k]) q[k] = f[k];
      if (f.ecu_id && f.version) { q.ecu_id = f.ecu_id; q.version = f.version; }
      get('/api/v1/vehicles', q).then((o) => {
        if (ctx.alive() && want === JSON.stringify([f, offset])) onlineN.textContent = ` · ${(o.total ?? 0).toLocaleString('en')} online`;
      }, () => {});
    }
    const body = h('tbody');
    for (const v of items) {
      const dot = h('td', { class: 'c-dot' }, onlineDot(v.online));
      const seen = h('td', null, timeEl(v.last_seen_ms));
      rows.set(v.vin, { dot, seen });
      body.appendChild(h('tr', { dataset: { vin: v.vin, test: 'vehicle-row' } },
        dot,
        h('td', null, h('a', { href: '#/fleet/' + encodeURIComponent(v.vin), text: v.vin, class: 'mono' })),
        h('td', { text: v.model || '—', dataset: { test: 'model' } }),
        seen,
        h('td', null, v.vmg_version ? h('span', { class: 'version', text: v.vmg_version }) : h('span', { class: 'muted', text: '—' })),
        h('td', null, v.last_vci_ms !== undefined ? timeEl(v.last_vci_ms) : h('span', { class: 'muted', text: '—' })),
        h('td', null, campaignCell(v.campaign))));
    }
    list.classList.remove('stale');
    replace(list,
      items.length ? h('table', { class: 'grid fleet' },
        h('thead', null, h('tr', null, ['', 'VIN', 'Model', 'Last seen', 'VMG version', 'Last VCI', 'Campaign'].map((c) => h('th', { text: c, scope: 'col' })))),
        body) : empty('No vehicle matches these filters.'),
      pager(page, (o) => { offset = o; sync(); load(); }));
    if (first) {
      first = false;
      window.__pqotaFleetRenderMs = performance.now() - t0;
      list.dataset.renderMs = window.__pqotaFleetRenderMs.toFixed(0);
    }
    list.dataset.state = 'loaded';
    list.dataset.offset = String(offset);
  }

  function sync() { ctx.setQuery({ ...f, offset: offset || '' }); }
  const apply = debounce(() => {
    f.online = online.value; f.model = model.value.trim(); f.vin_prefix = prefix.value.trim();
    f.ecu_id = ecu.value.trim(); f.version = ver.value.trim();
    offset = 0;
    sync();
    load();
  }, 250);
  for (const el of [online, model, prefix, ecu, ver]) el.addEventListener(el.tagName === 'SELECT' ? 'change' : 'input', apply);

  replace(ctx.root,
    h('div', { class: 'page-head' }, h('h1', { text: 'Fleet' }), count),
    h('section', { class: 'card' },
      h('div', { class: 'filters' }, online, model, prefix, h('span', { class: 'muted small', text: 'ECU at version:' }), ecu, ver),
      list));
  replace(list, spinner());

  ctx.on('presence', (ev) => {
    const r = rows.get(ev.vin);
    if (!r) return;
    replace(r.dot, onlineDot(ev.online));
    replace(r.seen, timeEl(ev.at_ms));
    r.dot.parentElement.classList.add('flash');
    setTimeout(() => r.dot.parentElement && r.dot.parentElement.classList.remove('flash'), 1200);
  });
  ctx.every(30000, load);
  await load();
}
