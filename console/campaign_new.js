// campaign_new.js: the form that creates a campaign (#/campaigns/new), POST
// /api/v1/campaigns (docs/api.md 12.2): releases, target filter, phases, consent, deadline,
// install order; checked here first, then by the server (its message is shown by the field
// it names when it can be placed, else above the buttons).
import { h, replace, clear, field, setFieldError, errorBox, spinner, empty, fmtBytes, confirmDialog, toast } from './dom.js';
import { get, post, session, itemsOf } from './api.js';
import * as V from './validate.js';

const list = (s) => s.split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);

function phaseRow(rows, init = {}) {
  const kind = h('select', { 'aria-label': 'phase size kind' }, h('option', { value: 'percent', text: '% of all (cumulative)' }), h('option', { value: 'count', text: 'vehicles' }));
  kind.value = init.count !== undefined ? 'count' : 'percent';
  const val = h('input', { type: 'number', min: 0, step: 'any', class: 'narrow', value: init.count ?? init.percent ?? 100, 'aria-label': 'phase size' });
  const err = h('input', { type: 'number', min: 0, max: 100, step: 'any', class: 'narrow', value: init.error_pct ?? 10, 'aria-label': 'error threshold percent' });
  const ok = h('input', { type: 'number', min: 0, max: 100, step: 'any', class: 'narrow', value: 100, 'aria-label': 'success threshold percent' });
  const row = h('div', { class: 'phase-row' },
    h('span', { class: 'phase-no' }), val, kind,
    h('label', { class: 'small' }, 'pause above ', err, ' % failures'),
    h('label', { class: 'small' }, 'next phase at ', ok, ' % completed'),
    h('button', { type: 'button', class: 'icon-btn', title: 'remove this phase', text: '✕', onclick: () => { row.remove(); renumber(rows); } }));
  row.read = () => {
    const p = {};
    const v = Number(val.value);
    if (kind.value === 'count') p.count = Math.round(v); else p.percent = v;
    p.error_threshold = Number(err.value) / 100;
    p.success_threshold = Number(ok.value) / 100;
    return p;
  };
  row.check = () => {
    const v = Number(val.value);
    if (val.value === '' || Number.isNaN(v) || v < 0 || (kind.value === 'percent' && v > 100)) return 'a size: 0..100 % or a number of vehicles';
    for (const x of [err, ok]) { const n = Number(x.value); if (x.value === '' || n < 0 || n > 100) return 'thresholds are 0..100 %'; }
    return '';
  };
  rows.appendChild(row);
  renumber(rows);
  return row;
}

function renumber(rows) {
  [...rows.children].forEach((r, i) => { r.querySelector('.phase-no').textContent = `Phase ${i + 1}`; });
}

export async function render(ctx) {
  if (!session.can('operator')) {
    replace(ctx.root, errorBox({ status: 403, code: 'forbidden', message: 'creating a campaign needs the operator role' }));
    return;
  }
  ctx.onReset = () => {}; // missed events change nothing in a form being filled in
  replace(ctx.root, spinner());
  const rels = itemsOf(await get('/api/v1/releases', { limit: 200 }));
  if (!ctx.alive()) return;
  const name = h('input', { type: 'text', maxlength: 128, dataset: { test: 'c-name' } });
  const relBox = h('div', { class: 'rel-pick', dataset: { test: 'c-releases' } },
    rels.length ? rels.map((r) => h('label', { class: 'rel-opt' },
      h('input', { type: 'checkbox', value: r.id, dataset: { hw: r.hardware_id, test: 'c-release' } }),
      h('span', null, h('strong', { text: `${r.title}` }), ' ', h('span', { class: 'version', text: r.version }),
        h('span', { class: 'muted small', text: ` ${r.ecu_id} · ${r.hardware_id} · ${fmtBytes(r.package && r.package.length)}${r.delta ? ' · delta from ' + r.delta.base_version : ''}` }))))
      : empty('No releases: post one on the notice board first.'));
  const relErr = h('div', { class: 'field-error', role: 'alert' });
  const model = h('input', { type: 'text', placeholder: 'any model', dataset: { test: 'c-model' } });
  const vins = h('textarea', { rows: 2, placeholder: 'any VIN (or a list: one per line, or separated by commas)', dataset: { test: 'c-vins' } });
  const hws = h('input', { type: 'text', placeholder: 'all the releases\' hardware ids' });
  const vmin = h('input', { type: 'text', placeholder: 'no bound', class: 'narrow' });
  const vmax = h('input', { type: 'text', placeholder: 'no bound', class: 'narrow' });
  const consent = h('input', { type: 'checkbox', dataset: { test: 'c-consent' } });
  const deadline = h('input', { type: 'datetime-local' });
  const order = h('input', { type: 'text', placeholder: 'ECU_011, ECU_032 … (empty: any order)' });
  const notes = h('textarea', { rows: 2, placeholder: 'default: the releases\' titles' });
  const timeout = h('input', { type: 'number', min: 1, max: 31536000, value: 3600, class: 'narrow' });
  const rollback = h('select', null, h('option', { value: 'all_or_nothing', text: 'all or nothing' }), h('option', { value: 'none', text: 'none' }));
  const phases = h('div', { class: 'phases' });
  phaseRow(phases, { percent: 100 });
  const status = h('div');
  const submit = h('button', { type: 'submit', class: 'btn primary', text: 'Create campaign', dataset: { test: 'c-create' } });
  const startToo = h('input', { type: 'checkbox', dataset: { test: 'c-start' } });

  const build = () => {
    const errs = [];
    const chosen = [...relBox.querySelectorAll('input[type=checkbox]:checked')];
    const hwSeen = new Set();
    let relMsg = chosen.length ? '' : 'choose at least one release';
    for (const c of chosen) { if (hwSeen.has(c.dataset.hw)) relMsg = 'at most one release per hardware id'; hwSeen.add(c.dataset.hw); }
    if (chosen.length > 32) relMsg = 'at most 32 releases';
    relErr.textContent = relMsg;
    if (relMsg) errs.push(relBox);
    const nm = name.value.trim();
    setFieldError(name, nm ? ([...nm].length > 128 ? 'at most 128 characters' : '') : 'a name is required');
    if (!nm || [...nm].length > 128) errs.push(name);
    const spec = { name: nm, release_ids: chosen.map((c) => c.value) };
    const target = {};
    if (model.value.trim()) target.model = model.value.trim();
    if (list(vins.value).length) target.vins = list(vins.value);
    if (list(hws.value).length) target.hardware_ids = list(hws.value);
    for (const [el, k] of [[vmin, 'version_min'], [vmax, 'version_max']]) {
      const v = el.value.trim();
      const e = v ? V.version(v) : '';
      setFieldError(el, e);
      if (e) errs.push(el);
      if (v) target[k] = v;
    }
    if (Object.keys(target).length) spec.target = target;
    const policy = { consent_required: consent.checked, rollback_policy: rollback.value };
    if (deadline.value) {
      const d = new Date(deadline.value);
      if (Number.isNaN(d.getTime())) { setFieldError(deadline, 'not a date'); errs.push(deadline); } else {
        policy.deadline = d.toISOString().replace(/\.\d{3}Z$/, 'Z');
        setFieldError(deadline, '');
      }
    }
    const io = list(order.value);
    const bad = io.find((e) => V.ecuId(e));
    setFieldError(order, bad ? `not an ECU id: ${bad}` : '');
    if (bad) errs.push(order);
    if (io.length) policy.install_order = io;
    const to = Number(timeout.value);
    setFieldError(timeout, to >= 1 && to <= 31536000 && Number.isInteger(to) ? '' : '1..31536000 seconds');
    if (!(to >= 1 && to <= 31536000)) errs.push(timeout); else policy.vehicle_timeout_s = to;
    if (notes.value.trim()) spec.release_notes = notes.value;
    spec.policy = policy;
    const rows = [...phases.children];
    const pmsg = rows.length ? rows.map((r) => r.check()).find(Boolean) || '' : 'at least one phase';
    phases.nextElementSibling.textContent = pmsg;
    if (pmsg) errs.push(phases);
    spec.phases = rows.map((r) => r.read());
    return { spec, errs };
  };

  const form = h('form', {
    class: 'campaign-form', novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      clear(status);
      const { spec, errs } = build();
      if (errs.length) { (errs[0].focus ? errs[0] : name).focus(); return; }
      // starting at once is a rollout: asked as the campaign page's Start is
      if (startToo.checked && !(await confirmDialog('Create and start the campaign?',
        `“${spec.name}” goes out to its vehicles as soon as it is created.`, 'Create and start', false))) return;
      submit.disabled = true;
      let c = null;
      try {
        c = await post('/api/v1/campaigns', spec);
        if (startToo.checked) await post(`/api/v1/campaigns/${encodeURIComponent(c.id)}/start`);
        location.hash = '#/campaigns/' + encodeURIComponent(c.id);
      } catch (ex) {
        // created but not started: show the draft (a second submit would make another)
        if (c) { location.hash = '#/campaigns/' + encodeURIComponent(c.id); toast('Created, but not started: ' + ex.message, 'error', 6000); return; }
        replace(status, errorBox(ex));
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('section', { class: 'card' }, h('h2', { text: 'Campaign' }), field('Name', name),
    h('div', { class: 'field' }, h('label', { text: 'Releases (one per hardware id)' }), relBox, relErr),
    field('Release notes for the vehicles', notes)),
  h('section', { class: 'card' }, h('h2', { text: 'Target' }),
    h('p', { class: 'muted small', text: 'Every vehicle with an ECU that needs one of the releases (older installed version), narrowed by these filters.' }),
    h('div', { class: 'cols-2 tight' }, field('Model', model), field('Hardware ids', hws)),
    field('VINs', vins),
    h('div', { class: 'cols-2 tight' }, field('Installed version from', vmin), field('Installed version up to', vmax))),
  h('section', { class: 'card' }, h('h2', { text: 'Rollout' }),
    phases, h('div', { class: 'field-error', role: 'alert' }),
    h('button', { type: 'button', class: 'btn small', text: '+ Add a phase', onclick: () => phaseRow(phases, { count: 1 }) }),
    h('div', { class: 'cols-2 tight' },
      h('div', { class: 'field' }, h('label', { class: 'check' }, consent, ' Driver consent required')),
      field('Deadline (local time, sent as UTC)', deadline)),
    h('div', { class: 'cols-2 tight' }, field('Install order', order), field('Rollback', rollback)),
    field('Vehicle timeout (s)', timeout, 'no vehicle message for this long: timed out')),
  status,
  h('div', { class: 'row end' },
    h('label', { class: 'check' }, startToo, ' start it at once'),
    h('a', { class: 'btn', href: '#/campaigns', text: 'Cancel' }), submit));

  replace(ctx.root,
    h('div', { class: 'page-head' }, h('a', { href: '#/campaigns', class: 'back', text: '‹ Campaigns' }), h('h1', { text: 'New campaign' })),
    form);
  name.focus();
}
