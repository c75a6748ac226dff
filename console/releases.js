// releases.js: the notice board (#/releases): every release, newest first, with its
// packages, search and paging; new releases appear live (the `release` event). The upload
// panel (operators) is upload_panel.js.
import { h, replace, clear, table, pager, hashEl, timeEl, fmtBytes, errorBox, spinner, empty, debounce, toast } from './dom.js';
import { get, session, itemsOf } from './api.js';
import { uploadPanel } from './upload_panel.js';

const LIMIT = 20;

function deltasOf(r) {
  if (Array.isArray(r.deltas)) return r.deltas;
  return r.delta ? [r.delta] : [];
}

function releaseRow(r, fresh) {
  const deltas = deltasOf(r);
  return h('tr', { class: fresh ? 'fresh' : '', dataset: { release: r.id, test: 'release-row' } },
    h('td', null,
      h('div', { class: 'title-cell', text: r.title, dataset: { test: 'release-title' } }),
      r.notes ? h('div', { class: 'notes muted', text: r.notes.length > 140 ? r.notes.slice(0, 140) + '…' : r.notes, title: r.notes }) : null),
    h('td', null, h('span', { class: 'version', text: r.version })),
    h('td', null, h('code', { text: r.ecu_id }), ' ', h('span', { class: 'muted small', text: r.software_type || '' })),
    h('td', null, h('code', { text: r.hardware_id })),
    h('td', { class: 'num' },
      h('div', { text: fmtBytes(r.package && r.package.length), title: 'full package (SWPG)' }),
      r.image ? h('div', { class: 'muted small', text: 'image ' + fmtBytes(r.image.length) }) : null),
    h('td', null, hashEl(r.package && r.package.sha256)),
    h('td', null, deltas.length
      ? deltas.map((d) => h('div', { class: 'delta', dataset: { test: 'delta' } },
        h('span', { class: 'chip', text: `from ${d.base_version || '?'}` }), ' ',
        h('span', { text: fmtBytes(d.length) }),
        r.package && r.package.length && d.length ? h('span', { class: 'muted small', text: ` (${Math.max(0.1, (100 * d.length) / r.package.length).toFixed(1)} %)` }) : null,
        d.source ? h('span', { class: 'muted small', text: ` · ${d.source}`, title: d.source === 'uploaded' ? 'supplied by the operator, checked against the base' : 'computed by the server', dataset: { test: 'delta-source' } }) : null))
      : h('span', { class: 'muted', text: 'full only' })),
    h('td', null, h('div', { text: (r.created_by || '').replace(/^apikey:/, '') }), timeEl(r.created_ms)));
}

export async function render(ctx) {
  const q0 = ctx.query.get('q') || '';
  let offset = Number(ctx.query.get('offset')) || 0;
  let q = q0;
  const fresh = new Set();
  const list = h('div', { class: 'list', dataset: { test: 'release-list' } });
  const search = h('input', {
    type: 'search', class: 'search', maxlength: 64, placeholder: 'Search title, version, ECU, hardware id…', value: q0,
    'aria-label': 'search releases', dataset: { test: 'release-search' },
  });
  const count = h('span', { class: 'muted' });

  async function load() {
    const at = { q, offset };
    if (list.querySelector('table')) list.classList.add('stale');
    else replace(list, spinner());
    let page;
    try {
      page = await get('/api/v1/releases', { limit: LIMIT, offset, q: q || undefined });
    } catch (e) {
      if (!ctx.alive()) return;
      list.classList.remove('stale');
      replace(list, errorBox(e.status === 400 && q ? { ...e, message: e.message + ' (search may not be supported by this server)' } : e));
      return;
    }
    if (!ctx.alive() || at.q !== q || at.offset !== offset) return;
    const items = itemsOf(page);
    count.textContent = `${page.total ?? items.length} release${page.total === 1 ? '' : 's'}`;
    list.classList.remove('stale');
    replace(list,
      items.length ? table([
        { label: 'Title' }, { label: 'Version' }, { label: 'ECU' }, { label: 'Hardware' },
        { label: 'Size', cls: 'num' }, { label: 'SHA-256 (package)' }, { label: 'Deltas' }, { label: 'Posted' },
      ], items.map((r) => releaseRow(r, fresh.has(r.id)))) : empty(q ? `No release matches “${q}”.` : 'No releases yet.'),
      pager(page, (o) => { offset = o; ctx.setQuery({ q, offset: o || '' }); load(); }));
  }

  search.addEventListener('input', debounce(() => {
    q = search.value.trim();
    offset = 0;
    ctx.setQuery({ q, offset: '' });
    load();
  }, 300));

  const board = h('section', { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', { text: 'Releases' }), count, h('span', { class: 'spacer' }), search),
    list);
  const panel = session.can('operator') ? uploadPanel(ctx, (rel) => { fresh.add(rel.id); offset = 0; load(); }) : null;
  replace(ctx.root,
    h('div', { class: 'page-head' }, h('h1', { text: 'Notice board' }),
      h('p', { class: 'muted', text: 'Software posted for the fleet: full images and differential packages, newest first.' })),
    panel, board);

  ctx.on('release', (ev) => {
    if (ev.deleted) toast(`Release ${ev.title || ev.id} was deleted`);
    else {
      fresh.add(ev.id);
      const title = ev.title || '';
      const version = ev.version && !title.includes(ev.version) ? ` ${ev.version}` : '';
      toast(`New release: ${title}${version} for ${ev.ecu_id || ''}`.trim());
    }
    if (offset === 0) load();
  });
  ctx.every(30000, () => { if (offset === 0) load(); });
  ctx.onReset = () => load(); // the list only: the upload form keeps its input and its upload
  await load();
}
