// diag_view.js: the pieces of remote diagnostics shared by the diagnostics page and the
// vehicle page: the UDS request form with presets, and a batch's results, kept live by
// `diag` events (each one re-reads GET /api/v1/diagnostics/{id}, throttled).
import { h, replace, clear, field, setFieldError, errorBox, badge, table, empty, throttle, fmtTime, confirmDialog } from './dom.js';
import { get, post, session } from './api.js';
import * as V from './validate.js';

export const PRESETS = [
  ['22 F190', 'read the VIN'],
  ['22 F195', 'software version'],
  ['3E 80', 'tester present (answer suppressed)'],
  ['10 03', 'extended session'],
  ['19 02 FF', 'DTCs by status mask'],
];

const hexSpaced = (s) => (s || '').replace(/\s+/g, '').toUpperCase().replace(/(..)(?=.)/g, '$1 ');

// asText: a positive answer's data as text when it is printable (a DID like F190)
function asText(r) {
  if (r.text !== undefined && r.text !== null) return r.text;
  return null;
}

function statusOf(r) {
  if (r.suppressed || r.status === 'suppressed') return 'suppressed';
  return r.status;
}

export function resultRows(items) {
  return items.map((r) => {
    const st = statusOf(r);
    let detail;
    if (st === 'suppressed') detail = h('span', { class: 'muted', text: 'positive answer suppressed (no response expected)' });
    else if (st === 'negative') detail = h('span', null, h('code', { text: hexSpaced(r.response) }), ' ', h('strong', { text: r.nrc_name || 'NRC' }),
      r.nrc !== null && r.nrc !== undefined ? h('span', { class: 'muted', text: ` (0x${Number(r.nrc).toString(16).toUpperCase().padStart(2, '0')})` }) : null);
    else if (st === 'positive') {
      const t = asText(r);
      detail = h('span', null, h('code', { class: 'wrap', text: hexSpaced(r.response) }), t ? [' ', h('span', { class: 'did-text', text: `“${t}”`, dataset: { test: 'did-text' } })] : null);
    } else detail = h('span', { class: 'muted', text: r.error || '' });
    return h('tr', { dataset: { vin: r.vin, test: 'diag-row' } },
      h('td', null, h('a', { href: '#/fleet/' + encodeURIComponent(r.vin), class: 'mono', text: r.vin })),
      h('td', null, h('code', { text: r.ecu_id || '' })),
      h('td', null, badge(st)),
      h('td', null, detail),
      h('td', { class: 'num', text: r.elapsed_ms !== null && r.elapsed_ms !== undefined ? `${r.elapsed_ms} ms` : '—' }));
  });
}

// batchView(ctx, id): the live results of a batch; returns its element
export function batchView(ctx, id, onState) {
  const el = h('div', { class: 'batch', dataset: { test: 'diag-batch', batch: id } }, h('div', { class: 'muted', text: 'waiting for answers…' }));
  let offset = 0;
  const load = async () => {
    let b;
    try { b = await get('/api/v1/diagnostics/' + encodeURIComponent(id), { limit: 50, offset }); } catch (e) { if (ctx.alive()) replace(el, errorBox(e)); return; }
    if (!ctx.alive()) return;
    const c = b.counts || {};
    const res = b.results || { items: [] };
    const agg = b.aggregate || {};
    if (onState && el.dataset.state !== b.state) onState(b.state);
    el.dataset.state = b.state;
    replace(el,
      h('div', { class: 'batch-head' },
        h('span', null, 'Request ', h('code', { text: hexSpaced(b.request) }), ' to ', h('code', { text: b.ecu_id }),
          ` on ${b.targets} vehicle${b.targets === 1 ? '' : 's'} · ${b.requested_by || ''} · ${fmtTime(b.created_ms)} `),
        badge(b.state)),
      h('div', { class: 'tiles small' }, ['positive', 'negative', 'suppressed', 'timeout', 'error', 'pending', 'sent']
        .filter((k) => c[k] !== undefined && (c[k] > 0 || ['positive', 'negative', 'timeout'].includes(k)))
        .map((k) => h('div', { class: 'tile st-' + k, dataset: { test: 'diag-count-' + k } }, h('div', { class: 'tile-n', text: String(c[k]) }), h('div', { class: 'tile-l', text: k })))),
      agg.nrc && agg.nrc.length ? h('div', { class: 'agg' }, h('strong', { text: 'Negative answers: ' }),
        agg.nrc.map((n) => h('span', { class: 'chip', text: `${n.nrc_hex || n.nrc} ${n.nrc_name || ''} × ${n.count}` }))) : null,
      agg.responses && agg.responses.length ? h('div', { class: 'agg' }, h('strong', { text: `Positive answers (${agg.distinct_responses ?? agg.responses.length} distinct): ` }),
        agg.responses.slice(0, 5).map((r) => h('span', { class: 'chip' }, h('code', { text: hexSpaced(r.response) }), r.text ? ` “${r.text}”` : '', ` × ${r.count}`))) : null,
      res.items && res.items.length ? table([{ label: 'VIN' }, { label: 'ECU' }, { label: 'Status' }, { label: 'Answer' }, { label: 'Time', cls: 'num' }], resultRows(res.items)) : empty('no results yet'),
      res.total > res.limit ? h('div', { class: 'pager' },
        h('span', { class: 'muted', text: `${offset + 1}–${Math.min(offset + res.limit, res.total)} of ${res.total}` }),
        h('button', { type: 'button', class: 'btn small', text: '‹ Prev', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - res.limit); load(); } }),
        h('button', { type: 'button', class: 'btn small', text: 'Next ›', disabled: offset + res.limit >= res.total, onclick: () => { offset += res.limit; load(); } })) : null);
  };
  const reload = throttle(load, 300);
  ctx.on('diag', (ev) => { if (ev.id === id) reload(); });
  load();
  // a batch that is still running is re-read now and then too (events may be coalesced)
  const timer = setInterval(() => { if (el.dataset.state === 'running') reload(); }, 3000);
  ctx.cleanup(() => clearInterval(timer));
  return el;
}

// the fleet form's last values: they stay when the page moves to the results of a request
const last = { kind: 'vin', target: '', ecu: 'ECU_011', req: '22 F190', timeout: 10 };

// diagForm(ctx, {vin, ecus, onSent}): the request form. With vin: that vehicle only.
export function diagForm(ctx, opts = {}) {
  const ecu = h(opts.ecus ? 'select' : 'input', opts.ecus ? { dataset: { test: 'diag-ecu' } } : { type: 'text', value: 'ECU_011', list: 'diag-ecus', dataset: { test: 'diag-ecu' } });
  if (opts.ecus) for (const e of opts.ecus) ecu.appendChild(h('option', { value: e, text: e, selected: e === 'ECU_011' }));
  const req = h('input', { type: 'text', class: 'mono', placeholder: '22 F190', value: opts.vin ? '22 F190' : last.req, dataset: { test: 'diag-request' } });
  const timeout = h('input', { type: 'number', min: 1, max: 300, value: opts.vin ? 10 : last.timeout, class: 'narrow' });
  if (!opts.vin && !opts.ecus) ecu.value = last.ecu;
  const presets = h('div', { class: 'presets' }, PRESETS.map(([hex, what]) =>
    h('button', { type: 'button', class: 'chip btn-chip', title: what, text: hex, onclick: () => { req.value = hex; setFieldError(req, ''); } })));
  const out = h('div', { class: 'diag-out' });
  const targetKind = h('select', { dataset: { test: 'diag-target-kind' } },
    [['vin', 'one VIN'], ['vins', 'a list of VINs'], ['model', 'a model'], ['hardware_id', 'vehicles with a hardware id'], ['all', 'every vehicle']]
      .map(([v, l]) => h('option', { value: v, text: l })));
  const target = h('input', { type: 'text', placeholder: 'VIN', value: last.target, dataset: { test: 'diag-target' } });
  const showKind = () => {
    target.hidden = targetKind.value === 'all';
    target.placeholder = { vin: 'VIN', vins: 'VIN1, VIN2 …', model: 'model', hardware_id: 'HW-1-011' }[targetKind.value] || '';
  };
  targetKind.value = last.kind;
  showKind();
  targetKind.addEventListener('change', showKind);
  const send = h('button', { type: 'submit', class: 'btn primary', text: 'Send', dataset: { test: 'diag-send' }, disabled: !session.can('operator'), title: session.can('operator') ? '' : 'needs the operator role' });
  const form = h('form', {
    class: 'diag-form', novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      const herr = V.hex(req.value);
      setFieldError(req, herr);
      const eid = ecu.value.trim();
      setFieldError(ecu, eid ? '' : 'an ECU id is required');
      let body = { ecu_id: eid, request: req.value.replace(/[\s:]/g, ''), timeout_s: Number(timeout.value) || 10 };
      if (opts.vin) body.vin = opts.vin;
      else {
        const k = targetKind.value, v = target.value.trim();
        if (k !== 'all' && !v) { setFieldError(target, 'a target is required'); return; }
        setFieldError(target, '');
        if (k === 'vin') body.vin = v;
        else if (k === 'vins') body.filter = { vins: v.split(/[\s,;]+/).filter(Boolean) };
        else if (k === 'all') body.filter = { all: true };
        else body.filter = { [k]: v };
      }
      if (herr || !eid) return;
      // a request to more than one vehicle is confirmed first, more sternly for services
      // that change an ECU's state (a reset, a session, a write, a routine, a download)
      if (body.filter) {
        const sid = body.request.slice(0, 2).toUpperCase();
        const changes = ['10', '11', '14', '27', '28', '2E', '2F', '31', '34', '35', '36', '37', '3B', '85'].includes(sid);
        const who = targetKind.options[targetKind.selectedIndex].text + (targetKind.value === 'all' ? '' : ` ${target.value.trim()}`);
        const ok = await confirmDialog(changes ? 'Send a state-changing request to many vehicles?' : 'Send to many vehicles?',
          `${req.value.trim()} to ${eid} of ${who}.` + (changes ? ` Service 0x${sid} changes the ECU's state on every vehicle that answers.` : ''),
          'Send', changes);
        if (!ok) return;
      }
      if (!opts.vin) Object.assign(last, { kind: targetKind.value, target: target.value, ecu: eid, req: req.value, timeout: Number(timeout.value) || 10 });
      send.disabled = true;
      try {
        const b = await post('/api/v1/diagnostics', body);
        if (opts.onSent) opts.onSent(b);
        else replace(out, batchView(ctx, b.id));
      } catch (ex) {
        replace(out, errorBox(ex));
      } finally {
        send.disabled = false;
      }
    },
  },
  opts.vin ? null : h('div', { class: 'row' }, field('Target', targetKind), field('\u00a0', target)),
  h('div', { class: 'row' }, field('ECU', ecu), field('UDS request (hex)', req), field('Timeout (s)', timeout), h('div', { class: 'field' }, h('label', { text: '\u00a0' }), send)),
  presets,
  h('datalist', { id: 'diag-ecus' }, ['VMG', 'ZGW1', 'ZGW2', 'ZGW3', 'ZGW4', 'ZGW5', 'ECU_001', 'ECU_011', 'ECU_032', 'ECU_053'].map((v) => h('option', { value: v }))));
  return h('div', null, form, out);
}
