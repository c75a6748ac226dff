// upload_panel.js: "post a new release" on the notice board (operators): the full image
// and optionally a differential image (an SWPG delta file the operator made) or a delta the
// server computes from an earlier release; fields validated before anything is sent; the
// images go up in resumable pieces (uploader.js) with a progress bar; then POST
// /api/v1/releases.
import { h, replace, clear, field, setFieldError, fmtBytes, errorBox, toast, debounce } from './dom.js';
import { get, post, itemsOf } from './api.js';
import * as V from './validate.js';
import { upload, forget, leaveUpload } from './uploader.js';

function dropZone(label, testId) {
  const input = h('input', { type: 'file', class: 'file-input', dataset: { test: testId } });
  const name = h('span', { class: 'dz-file muted', text: 'no file chosen' });
  const zone = h('label', { class: 'dropzone', tabindex: '0' },
    h('span', { class: 'dz-icon', 'aria-hidden': 'true', text: '⇪' }),
    h('span', null, h('strong', { text: label }), h('br'), h('span', { class: 'muted small', text: 'drop a file here or click to choose' })),
    name, input);
  const state = { file: null, zone, input };
  const setFile = (f) => {
    state.file = f || null;
    name.textContent = f ? `${f.name} · ${fmtBytes(f.size)}` : 'no file chosen';
    name.classList.toggle('muted', !f);
    zone.classList.toggle('has-file', !!f);
    setFieldError(input, '');
    if (state.onChange) state.onChange(f);
  };
  input.addEventListener('change', () => setFile(input.files[0]));
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]);
  });
  zone.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } });
  state.reset = () => { input.value = ''; setFile(null); };
  return state;
}

function progressBar(label) {
  const bar = h('div', { class: 'bar-fill' });
  const text = h('span', { class: 'bar-text', text: '' });
  const note = h('div', { class: 'bar-note muted small' });
  const el = h('div', { class: 'progress', hidden: true, dataset: { test: 'progress' } },
    h('div', { class: 'bar-label' }, h('strong', { text: label }), text),
    h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, bar), note);
  return {
    el,
    set(p) {
      el.hidden = false;
      const pct = p.total ? (100 * p.sent) / p.total : 100;
      bar.style.width = pct.toFixed(1) + '%';
      el.querySelector('.bar').setAttribute('aria-valuenow', pct.toFixed(0));
      const rate = p.rate ? ` · ${fmtBytes(p.rate)}/s` : '';
      text.textContent = p.phase === 'hashing' ? ' computing SHA-256…'
        : ` ${fmtBytes(p.sent)} of ${fmtBytes(p.total)} (${pct.toFixed(0)} %)${rate}`;
      el.classList.toggle('retrying', p.phase === 'retrying');
      if (p.note) note.textContent = p.note;
    },
    done(msg) { bar.style.width = '100%'; text.textContent = ' ' + msg; },
    hide() { el.hidden = true; note.textContent = ''; },
  };
}

export function uploadPanel(ctx, onPosted) {
  const full = dropZone('Full image', 'full-file');
  const delta = dropZone('Differential image (SWPG delta)', 'delta-file');
  const title = h('input', { type: 'text', maxlength: 128, dataset: { test: 'title' } });
  const version = h('input', { type: 'text', placeholder: '1.2.0', dataset: { test: 'version' } });
  const ecu = h('input', { type: 'text', placeholder: 'ECU_011', list: 'ecu-ids', dataset: { test: 'ecu-id' } });
  const hw = h('input', { type: 'text', placeholder: 'HW-1-011', dataset: { test: 'hardware-id' } });
  const stype = h('select', { dataset: { test: 'software-type' } }, ['APP', 'BOOT', 'CAL', 'CFG'].map((t) => h('option', { value: t, text: t })));
  const notes = h('textarea', { rows: 3, dataset: { test: 'notes' } });
  const modeName = 'delta-mode-' + Math.random().toString(36).slice(2, 7);
  const modes = [['none', 'No delta'], ['upload', 'Upload a differential image'], ['compute', 'Compute the delta from an earlier release']];
  const modeInputs = modes.map(([v]) => h('input', { type: 'radio', name: modeName, value: v, checked: v === 'none', dataset: { test: 'delta-mode-' + v } }));
  const base = h('select', { dataset: { test: 'delta-base' } }, h('option', { value: '', text: '— enter the hardware id first —' }));
  const baseRow = field('Base release (same hardware id)', base, 'the delta transforms this release\'s image into the new one');
  const deltaRow = h('div', { class: 'field' }, delta.zone, h('div', { class: 'field-error', role: 'alert' }));
  const fullRow = h('div', { class: 'field' }, full.zone, h('div', { class: 'field-error', role: 'alert' }));
  const pFull = progressBar('Full image');
  const pDelta = progressBar('Differential image');
  const status = h('div', { class: 'post-status', dataset: { test: 'upload-status' } });
  const submit = h('button', { type: 'submit', class: 'btn primary', text: 'Upload and post', dataset: { test: 'post-release' } });
  const abortBtn = h('button', { type: 'button', class: 'btn', text: 'Cancel upload', hidden: true });
  let abort = null;

  const mode = () => modeInputs.find((i) => i.checked).value;
  const showMode = () => {
    const m = mode();
    deltaRow.hidden = m !== 'upload';
    baseRow.hidden = m === 'none';
  };
  modeInputs.forEach((i) => i.addEventListener('change', showMode));

  // the base releases: earlier releases with the same hardware id
  const loadBases = debounce(async () => {
    const v = hw.value.trim();
    const keep = base.value; // the operator's choice survives a re-listing
    clear(base);
    if (!v) { base.appendChild(h('option', { value: '', text: '— enter the hardware id first —' })); return; }
    try {
      const page = await get('/api/v1/releases', { hardware_id: v, limit: 100 });
      const items = itemsOf(page).filter((r) => !stype.value || !r.software_type || r.software_type === stype.value);
      items.sort((a, b) => V.cmpVersion(b.version, a.version));
      base.appendChild(h('option', { value: '', text: items.length ? '— choose a release —' : `— no release for ${v} yet —` }));
      for (const r of items) base.appendChild(h('option', { value: r.id, text: `${r.version} · ${r.ecu_id} · ${r.title}`, selected: r.id === keep }));
    } catch (e) {
      base.appendChild(h('option', { value: '', text: 'could not list releases: ' + e.message }));
    }
  }, 250);
  hw.addEventListener('input', loadBases);
  stype.addEventListener('change', loadBases);

  const check = () => {
    const errs = [
      [title, V.text(title.value.trim(), 'a title', 128)],
      [version, V.version(version.value.trim())],
      [ecu, V.ecuId(ecu.value.trim())],
      [hw, V.hardwareId(hw.value.trim())],
      [notes, V.text(notes.value, 'notes', 65536, false)],
      [full.input, full.file ? '' : 'choose the full image'],
      [delta.input, mode() === 'upload' && !delta.file ? 'choose the differential image' : ''],
      [base, mode() !== 'none' && !base.value ? 'choose the base release of the delta' : ''],
    ];
    let first = null;
    for (const [el, msg] of errs) {
      setFieldError(el, msg);
      if (msg && !first) first = el;
    }
    return first;
  };

  const form = h('form', {
    class: 'upload-form', novalidate: true, dataset: { test: 'upload-form' },
    onsubmit: async (e) => {
      e.preventDefault();
      clear(status);
      const bad = check();
      if (bad) { (bad.type === 'file' ? bad.closest('.dropzone') : bad).focus(); return; }
      submit.disabled = true;
      abortBtn.hidden = false;
      abort = new AbortController();
      pDelta.hide();
      try {
        const fullUp = await upload(full.file, { onProgress: (p) => pFull.set(p), signal: abort.signal });
        pFull.done(fullUp.resumed ? `uploaded (resumed ${fullUp.resumed}×)` : 'uploaded');
        const body = {
          title: title.value.trim(), version: version.value.trim(), ecu_id: ecu.value.trim(),
          hardware_id: hw.value.trim(), software_type: stype.value, upload_id: fullUp.id,
        };
        if (notes.value.trim()) body.notes = notes.value;
        if (mode() !== 'none') body.delta_from = base.value;
        if (mode() === 'upload') {
          const dUp = await upload(delta.file, { onProgress: (p) => pDelta.set(p), signal: abort.signal });
          pDelta.done(dUp.resumed ? `uploaded (resumed ${dUp.resumed}×)` : 'uploaded');
          body.delta_upload_id = dUp.id;
        }
        // the last moment a cancel counts: from here on the release is being made
        if (abort.signal.aborted) throw new DOMException('aborted', 'AbortError');
        abortBtn.hidden = true;
        replace(status, h('span', { class: 'spin' }), ' building the packages…');
        const rel = await post('/api/v1/releases', body);
        forget(full.file); // its uploads are used up
        if (mode() === 'upload') forget(delta.file);
        replace(status, h('div', { class: 'alert ok', dataset: { test: 'posted' } },
          `Posted ${rel.title} ${rel.version} (${rel.ecu_id}, ${rel.hardware_id})`,
          !rel.delta ? '' : rel.delta.state && rel.delta.state !== 'ready'
            ? ` — its delta from ${rel.delta.base_version} is ${rel.delta.state === 'queued' ? 'queued' : 'being made'} (the board shows its progress)`
            : ` with a ${fmtBytes(rel.delta.length)} delta from ${rel.delta.base_version}`));
        full.reset(); delta.reset();
        title.value = ''; version.value = ''; notes.value = '';
        loadBases(); // the new release is a base for the next one
        onPosted(rel);
      } catch (ex) {
        if (ex.name === 'AbortError') replace(status, h('div', { class: 'alert warn', text: 'Upload cancelled.' }));
        else replace(status, errorBox(ex));
      } finally {
        submit.disabled = false;
        abortBtn.hidden = true;
        abort = null;
      }
    },
  },
  h('div', { class: 'cols-2' },
    h('div', null,
      fullRow,
      h('fieldset', { class: 'delta-mode' }, h('legend', { text: 'Differential package' }),
        modes.map(([v, l], i) => h('label', { class: 'radio' }, modeInputs[i], ' ', l))),
      deltaRow, baseRow),
    h('div', null,
      field('Title', title),
      h('div', { class: 'cols-2 tight' }, field('Version', version, 'semver, each number ≤ 255'), field('Software type', stype)),
      h('div', { class: 'cols-2 tight' }, field('ECU id', ecu, 'ECU_001..ECU_999, VMG, ZGW1..ZGW9'), field('Hardware id', hw)),
      field('Release notes', notes))),
  h('datalist', { id: 'ecu-ids' }, ['VMG', 'ZGW1', 'ZGW2', 'ZGW3', 'ZGW4', 'ZGW5', 'ECU_001', 'ECU_011'].map((v) => h('option', { value: v }))),
  pFull.el, pDelta.el, status,
  h('div', { class: 'row end' }, abortBtn, submit));
  abortBtn.addEventListener('click', () => abort && abort.abort());
  // a page left mid-upload stops it without posting a release; the server keeps what came
  // (choosing the same file again resumes it)
  ctx.cleanup(() => { if (abort) leaveUpload(abort); });
  showMode();

  return h('details', { class: 'card upload', dataset: { test: 'upload-panel' } },
    h('summary', { class: 'card-head', dataset: { test: 'new-release' } }, h('h2', { text: '+ Post a new release' }),
      h('span', { class: 'muted', text: 'full image, optional differential image, resumable upload' })),
    form);
}
