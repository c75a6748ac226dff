// vehicle.js: one vehicle (#/fleet/VIN): its zones and ECUs (versions, banks), the last
// VCI, the version history, its deployments with their transition chains, a VCI request
// and a UDS request box. Presence and VCI events update it live.
import { h, replace, clear, table, timeEl, errorBox, spinner, empty, badge, hashEl, toast, fmtTime, throttle } from './dom.js';
import { get, post, session, itemsOf } from './api.js';
import { onlineDot } from './fleet.js';
import { diagForm } from './diag_view.js';
import { transitionChain } from './campaign_parts.js';

function zonesOf(ecus) {
  const z = new Map();
  for (const e of ecus || []) {
    const k = e.zone ?? 0;
    if (!z.has(k)) z.set(k, []);
    z.get(k).push(e);
  }
  return [...z.entries()].sort((a, b) => a[0] - b[0]);
}

function ecuTable(list) {
  const sw = (e, t) => (e.software && e.software[t]) || '—';
  return table([{ label: 'ECU' }, { label: 'Hardware' }, { label: 'APP' }, { label: 'BOOT' }, { label: 'CAL' }, { label: 'Bank' }, { label: 'Serial' }, { label: 'Updated' }],
    list.map((e) => h('tr', { dataset: { ecu: e.ecu_id } },
      h('td', null, h('code', { text: e.ecu_id })), h('td', { class: 'mono small', text: e.hardware_id || '' }),
      h('td', null, h('span', { class: 'version', text: sw(e, 'APP') })), h('td', { text: sw(e, 'BOOT') }), h('td', { text: sw(e, 'CAL') }),
      h('td', null, h('span', { class: 'chip', text: e.bank || '?' })), h('td', { class: 'muted small', text: e.serial || '' }),
      h('td', null, timeEl(e.updated_ms)))), { class: 'compact' });
}

function deploymentsSection(ctx, vin) {
  const box = h('div', null, spinner());
  const load = async () => {
    let page;
    try {
      page = await get(`/api/v1/vehicles/${encodeURIComponent(vin)}/deployments`, { limit: 50 });
    } catch (e) {
      if (!ctx.alive()) return;
      replace(box, e.status === 404 || e.status === 405 ? empty('This server does not list a vehicle\'s deployments.') : errorBox(e));
      return;
    }
    if (!ctx.alive()) return;
    const items = itemsOf(page);
    if (!items.length) { replace(box, empty('No deployment for this vehicle.')); return; }
    replace(box, items.map((d) => {
      const cid = d.campaign_id || (d.campaign && d.campaign.id);
      const chain = h('div', { class: 'chain-box' });
      const det = h('details', { class: 'deployment', dataset: { test: 'vehicle-deployment' } },
        h('summary', null,
          h('a', { href: '#/campaigns/' + encodeURIComponent(cid), text: d.campaign_name || d.name || (cid || '').slice(0, 8) }), ' ',
          badge(d.state), d.error_code ? h('span', { class: 'err-code', text: ' ' + d.error_code }) : null,
          h('span', { class: 'muted small', text: ` phase ${d.phase ?? '?'} · updated ` }), timeEl(d.updated_ms)),
        chain);
      det.addEventListener('toggle', async () => {
        if (!det.open || chain.dataset.loaded) return;
        chain.dataset.loaded = '1';
        replace(chain, spinner());
        try {
          const full = await get(`/api/v1/campaigns/${encodeURIComponent(cid)}/vehicles/${encodeURIComponent(vin)}`);
          replace(chain, transitionChain(full));
        } catch (e) { replace(chain, errorBox(e)); }
      });
      return det;
    }));
  };
  load();
  return { el: box, reload: throttle(load, 500) };
}

export async function render(ctx) {
  const vin = ctx.params.vin;
  replace(ctx.root, spinner());
  const v = await get('/api/v1/vehicles/' + encodeURIComponent(vin));
  if (!ctx.alive()) return;
  const dot = h('span', null, onlineDot(v.online));
  const seen = h('span', null, timeEl(v.last_seen_ms));
  const vciBox = h('div');
  const showVci = (vci) => replace(vciBox, vci
    ? h('details', { class: 'json' }, h('summary', null, `VCI report: ${(vci.ecus || (vci.report && vci.report.ecus) || []).length} ECUs`), h('pre', { text: JSON.stringify(vci, null, 1) }))
    : empty('No VCI reported yet.'));
  showVci(v.last_vci);

  const vciBtn = session.can('operator') ? h('button', {
    type: 'button', class: 'btn', text: 'Request VCI', dataset: { test: 'vci-request' },
    onclick: async () => {
      vciBtn.disabled = true;
      try {
        await post(`/api/v1/vehicles/${encodeURIComponent(vin)}/vci-request`); // (no body)
        toast('VCI requested: it appears here when the vehicle reports');
      } catch (e) { toast('VCI request: ' + e.message, 'error'); } finally { vciBtn.disabled = false; }
    },
  }) : null;

  const zones = zonesOf(v.ecus);
  const vmg = (v.ecus || []).find((e) => e.ecu_id === 'VMG');
  const deps = deploymentsSection(ctx, vin);
  const history = v.history || [];

  replace(ctx.root,
    h('div', { class: 'page-head' },
      h('a', { href: '#/fleet', class: 'back', text: '‹ Fleet' }),
      h('h1', null, dot, ' ', h('span', { class: 'mono', text: v.vin })),
      h('span', { class: 'muted', text: v.model || '' }), h('span', { class: 'spacer' }), vciBtn),
    h('section', { class: 'card kv' },
      h('div', null, h('span', { class: 'k', text: 'Model' }), h('span', { text: v.model || '—', dataset: { test: 'vehicle-model' } })),
      h('div', null, h('span', { class: 'k', text: 'Last seen' }), seen),
      h('div', null, h('span', { class: 'k', text: 'VMG version' }), h('span', { text: (vmg && vmg.software && vmg.software.APP) || v.vmg_version || '—' })),
      h('div', null, h('span', { class: 'k', text: 'Boot sequence' }), h('span', { text: String(v.boot_seq ?? '—') })),
      h('div', null, h('span', { class: 'k', text: 'Registered' }), h('span', { text: fmtTime(v.created_ms) })),
      h('div', null, h('span', { class: 'k', text: 'Certificate' }), hashEl(v.certificate_sha256))),
    h('div', { class: 'cols-2' },
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'Deployments' })), deps.el),
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'UDS request' })),
        diagForm(ctx, { vin, ecus: (v.ecus || []).map((e) => e.ecu_id) }))),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: `ECUs (${(v.ecus || []).length})` }), h('span', { class: 'muted', text: `${zones.length} zone${zones.length === 1 ? '' : 's'}` })),
      zones.length ? zones.map(([z, list]) => h('details', { class: 'zone', open: zones.length <= 2 || z === zones[0][0] },
        h('summary', null, h('strong', { text: z === 0 ? 'Central (zone 0)' : `Zone ${z}` }), h('span', { class: 'muted', text: ` · ${list.length} ECUs` })),
        ecuTable(list))) : empty('No ECUs.')),
    h('div', { class: 'cols-2' },
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'Version history' }), h('span', { class: 'muted', text: `${v.history_total ?? history.length} changes` })),
        history.length ? table([{ label: 'When' }, { label: 'ECU' }, { label: 'Type' }, { label: 'From' }, { label: 'To' }],
          history.map((x) => [timeEl(x.at_ms), h('code', { text: x.ecu_id }), x.software_type, x.from, h('span', { class: 'version', text: x.to })]), { class: 'compact' }) : empty('No version change recorded.')),
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', { text: 'Last VCI' })), vciBox)));

  ctx.on('presence', (ev) => {
    if (ev.vin !== vin) return;
    replace(dot, onlineDot(ev.online));
    replace(seen, timeEl(ev.at_ms));
  });
  ctx.on('vci', (ev) => { if (ev.vin === vin) { toast('New VCI from ' + vin); ctx.reload(); } });
  ctx.on('deployment', (ev) => { if (ev.vin === vin) deps.reload(); });
}
