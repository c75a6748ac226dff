// releases.js: the notice board (#/releases): every release, newest first, with its
// packages, search and paging; new releases appear live (the `release` event), and each
// delta's state (queued, being made or checked with its progress, ready, failed with the
// reason) follows its `release_delta` events in place. The upload panel (operators) is
// upload_panel.js.
import { h, replace, clear, table, pager, hashEl, timeEl, fmtBytes, errorBox, spinner, empty, debounce, toast } from './dom.js';
import { get, session, itemsOf } from './api.js';
import { uploadPanel } from './upload_panel.js';

const LIMIT = 20;

function deltasOf(r) {
  if (Array.isArray(r.deltas)) return r.deltas;
  return r.delta ? [r.delta] : [];
}

// One delta of a release (pkgLen: its full package's length, for the ratio). A delta
// without a state is one from before deltas were made in the background: ready.
function deltaEl(d, pkgLen) {
  const state = d.state || 'ready';
  const ready = state === 'ready';
  const pct = d.progress && Number.isFinite(d.progress.percent) ? d.progress.percent : 0;
  const doing = d.source === 'uploaded' ? 'checking' : 'making';
  const label = { queued: 'queued', running: `${doing} ${pct} %`, failed: 'failed' }[state] || state;
  return h('div', { class: `delta delta-${state}`, dataset: { test: 'delta', base: d.base_version || '', state } },
    h('span', { class: 'chip', text: `from ${d.base_version || '?'}` }), ' ',
    ready ? h('span', { text: fmtBytes(d.length) }) : null,
    ready && pkgLen && d.length ? h('span', { class: 'muted small', text: ` (${Math.max(0.1, (100 * d.length) / pkgLen).toFixed(1)} %)` }) : null,
    ready ? null : h('span', { class: `delta-state ${state}`, text: label, title: d.error || '', dataset: { test: 'delta-state' } }),
    state === 'running' ? h('progress', { class: 'delta-progress', max: 100, value: pct, 'aria-label': `delta ${label}`, dataset: { test: 'delta-progress' } }) : null,
    d.source ? h('span', { class: 'muted small', text: ` · ${d.source}`, title: d.source === 'uploaded' ? 'supplied by the operator, checked against the base' : 'computed by the server', dataset: { test: 'delta-source' } }) : null,
    state === 'failed' && d.error ? h('div', { class: 'delta-error small', text: d.error, dataset: { test: 'delta-error' } }) : null);
}

// newer(d): the delta as the latest event has it, when that is newer than d (a list loaded
// while an event arrived must not put an older state back).
function releaseRow(r, fresh, newer = (d) => d) {
  const deltas = deltasOf(r).map(newer);
  return h('tr', { class: fresh ? 'fresh' : '', dataset: { release: r.id, test: 'release-row', pkgLength: String((r.package && r.package.length) || 0) } },
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
    h('td', { dataset: { test: 'deltas' } }, deltas.length
      ? deltas.map((d) => deltaEl(d, r.package && r.package.length))
      : h('span', { class: 'muted', text: 'full only' })),
    h('td', null, h('div', { text: (r.created_by || '').replace(/^apikey:/, '') }), timeEl(r.created_ms)));
}

export async function render(ctx) {
  const q0 = ctx.query.get('q') || '';
  let offset = Number(ctx.query.get('offset')) || 0;
  let q = q0;
  const fresh = new Set();
  const latest = new Map(); // release_id|base_version -> the newest release_delta event
  const newer = (d) => {
    const ev = latest.get(`${d.release_id}|${d.base_version}`);
    return ev && (ev.updated_ms || 0) > (d.updated_ms || 0) ? ev : d;
  };
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
      ], items.map((r) => releaseRow(r, fresh.has(r.id), newer))) : empty(q ? `No release matches “${q}”.` : 'No releases yet.'),
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
  // a delta's state and progress, in place (a row not shown is not loaded for it)
  ctx.on('release_delta', (d) => {
    latest.set(`${d.release_id}|${d.base_version}`, d);
    const row = list.querySelector(`tr[data-release="${CSS.escape(d.release_id || '')}"]`);
    const cell = row && row.querySelector('[data-test=deltas]');
    if (!cell) return;
    const el = deltaEl(newer(d), Number(row.dataset.pkgLength) || 0);
    const old = [...cell.querySelectorAll('[data-test=delta]')].find((x) => x.dataset.base === d.base_version);
    if (old) old.replaceWith(el);
    else { if (!cell.querySelector('[data-test=delta]')) clear(cell); cell.appendChild(el); }
    if (d.state === 'failed') toast(`The delta from ${d.base_version} failed: ${d.error || ''}`);
  });
  ctx.every(30000, () => { if (offset === 0) load(); });
  ctx.onReset = () => load(); // the list only: the upload form keeps its input and its upload
  await load();
}
