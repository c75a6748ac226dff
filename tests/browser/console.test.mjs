// console.test.mjs: the operator console in Debian's Chromium (Playwright, playwright-core
// only) against the real server, broker and agents that tests/integration/console_browser.sh
// starts. The specs run in order and share what earlier ones made (releases, campaigns).
//
// Environment (from the runner): PQOTA_URL, PQOTA_SPKI (base64 SHA-256 of the server
// certificate's SPKI, so that Chromium trusts it), PQOTA_ADMIN_KEY, PQOTA_VIEWER_KEY,
// PQOTA_VINS_OK (two agents that complete), PQOTA_VIN_FAIL (an agent whose ECU_011
// programming fails), PQOTA_VIN_XSS and PQOTA_XSS_MODEL (a vehicle with a hostile model),
// PQOTA_FILES (big-2.0.0.bin, big-2.1.0.bin, big-2.1.0.delta.swpg, small-1.1.0.bin, small-1.2.0.bin),
// PQOTA_SEEDED (10000 when seeded, else empty), PQOTA_SHOTS (screenshots).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k, d) => {
  const v = process.env[k];
  if (v === undefined && d === undefined) throw new Error(`${k} is not set (run tests/integration/console_browser.sh)`);
  return v ?? d;
};
const URL0 = env('PQOTA_URL');
const ADMIN = env('PQOTA_ADMIN_KEY');
const VIEWER = env('PQOTA_VIEWER_KEY');
const FILES = env('PQOTA_FILES');
const SHOTS = env('PQOTA_SHOTS', '');
const VINS_OK = env('PQOTA_VINS_OK').split(',');
const VIN_FAIL = env('PQOTA_VIN_FAIL');
const VIN_XSS = env('PQOTA_VIN_XSS');
const XSS_MODEL = env('PQOTA_XSS_MODEL');
const SEEDED = Number(env('PQOTA_SEEDED', '')) || 0;
const XSS_TITLE = '<script>window.__xss=1</script>"><img src=x onerror="window.__xss=2">';
const CHROMIUM = process.env.PQOTA_CHROMIUM || '/usr/bin/chromium';

let browser;
const shared = {}; // what earlier specs made: release ids, campaign ids

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

before(async () => {
  const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'];
  if (process.env.PQOTA_SPKI) args.push(`--ignore-certificate-errors-spki-list=${process.env.PQOTA_SPKI}`);
  // launch() gives every run a new temporary profile (a fresh user-data-dir), removed on close
  browser = await chromium.launch({ executablePath: CHROMIUM, args, headless: true });
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
});

// a new context (own cookies) and page; the page fails the test on a JS dialog (XSS)
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, ignoreHTTPSErrors: !process.env.PQOTA_SPKI });
  const page = await context.newPage();
  page.dialogs = [];
  page.beforeUnloads = 0;
  page.on('dialog', async (d) => {
    // leaving a page mid-upload asks first: accepted here (the specs leave on purpose)
    if (d.type() === 'beforeunload') { page.beforeUnloads++; await d.accept(); return; }
    page.dialogs.push(d.message());
    await d.dismiss();
  });
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  return { context, page };
}

async function shot(page, name) {
  if (!SHOTS) return;
  await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: false });
}

async function signIn(page, key, hash = '') {
  await page.goto(URL0 + '/' + hash);
  await page.locator('[data-test=api-key]').fill(key);
  await page.locator('[data-test=signin]').click();
  await page.locator('[data-test=user-name]').waitFor();
}

// fetch from inside the page (Chromium's TLS: X25519MLKEM768; node's own TLS has no ML-KEM)
async function inPage(page, method, path, { body, csrf = true, headers = {} } = {}) {
  return page.evaluate(async ({ method, path, body, csrf, headers }) => {
    const h = { ...headers };
    if (csrf && method !== 'GET') {
      const s = await fetch('/api/v1/session', { credentials: 'same-origin' });
      if (s.ok) h['X-CSRF-Token'] = (await s.json()).csrf_token;
    }
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers: h, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch { /* not JSON */ }
    return { status: r.status, data };
  }, { method, path, body, csrf, headers });
}

// --- sign-in, sessions, TLS and headers ------------------------------------------------------

test('sign in: the sign-in page, then the page asked for, with name and role', async () => {
  const { context, page } = await newPage();
  await page.goto(URL0 + '/#/campaigns');
  await page.locator('[data-test=api-key]').waitFor();
  assert.match(page.url(), /#\/signin\?next=campaigns/);
  await shot(page, '01-signin');
  await page.locator('[data-test=api-key]').fill(ADMIN);
  await page.locator('[data-test=signin]').click();
  await page.locator('[data-test=user-name]').waitFor();
  assert.equal(await page.locator('[data-test=user-name]').textContent(), 'console-admin');
  assert.equal(await page.locator('[data-test=user-role]').textContent(), 'admin');
  assert.match(page.url(), /#\/campaigns$/);
  const cookies = await context.cookies();
  const c = cookies.find((x) => x.name === '__Host-pqota_session');
  assert.ok(c, 'a __Host-pqota_session cookie');
  assert.equal(c.httpOnly, true);
  assert.equal(c.secure, true);
  assert.equal(c.sameSite, 'Strict');
  // the live event stream connects
  await page.locator('[data-test=conn].live').waitFor({ timeout: 15000 });
  await context.close();
});

test('a wrong key is refused', async () => {
  const { context, page } = await newPage();
  await page.goto(URL0 + '/');
  await page.locator('[data-test=api-key]').fill('pqk_' + '0'.repeat(64));
  await page.locator('[data-test=signin]').click();
  const err = page.locator('[data-test=signin-error] .alert');
  await err.waitFor();
  assert.match(await err.textContent(), /401/);
  assert.equal(await page.locator('[data-test=user-name]').count(), 0);
  assert.equal((await context.cookies()).filter((x) => x.name === '__Host-pqota_session').length, 0);
  await shot(page, '02-signin-refused');
  await context.close();
});

test('TLS X25519MLKEM768, the CSP and the security headers on /', async () => {
  const { context, page } = await newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const groups = [];
  cdp.on('Network.responseReceived', (e) => {
    const sd = e.response.securityDetails;
    if (sd) groups.push(sd.keyExchangeGroup || sd.keyExchange);
  });
  const res = await page.goto(URL0 + '/');
  assert.equal(res.status(), 200);
  const hd = res.headers();
  const csp = hd['content-security-policy'] || '';
  for (const d of ["default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]) {
    assert.ok(csp.includes(d), `CSP has ${d}: ${csp}`);
  }
  assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), 'no unsafe-inline/eval in the CSP');
  assert.equal(hd['x-content-type-options'], 'nosniff');
  assert.ok(hd['referrer-policy'], 'a Referrer-Policy');
  await page.locator('[data-test=api-key]').waitFor();
  assert.ok(groups.length > 0, 'responses with TLS details');
  assert.ok(groups.every((g) => g === 'X25519MLKEM768'), `every response over X25519MLKEM768: ${[...new Set(groups)]}`);
  // the server's own count: requests on X25519MLKEM768 grow with the browser's, no other group
  const metrics = async () => page.evaluate(async () => (await fetch('/metrics')).text());
  const m = (text, g) => Number((text.match(new RegExp(`pqota_tls_requests_total\\{group="${g}"\\} (\\d+)`)) || [])[1] || 0);
  const a = await metrics();
  await page.reload();
  await page.locator('[data-test=api-key]').waitFor();
  const b = await metrics();
  assert.ok(m(b, 'X25519MLKEM768') >= m(a, 'X25519MLKEM768') + 1, 'the server counted the requests on X25519MLKEM768');
  assert.equal(m(b, 'x25519') + m(b, 'other'), 0, 'no request on a classical group');
  console.log(`# TLS group(s) Chromium negotiated: ${[...new Set(groups)].join(', ')}`);
  await context.close();
});

// --- the notice board: uploads --------------------------------------------------------------

async function fillRelease(page, { title, version, ecu, hw, file, notes }) {
  const panel = page.locator('[data-test=upload-panel]');
  if (!(await panel.evaluate((d) => d.open))) await page.locator('[data-test=new-release]').click();
  await page.locator('[data-test=title]').fill(title);
  await page.locator('[data-test=version]').fill(version);
  await page.locator('[data-test=ecu-id]').fill(ecu);
  await page.locator('[data-test=hardware-id]').fill(hw);
  if (notes) await page.locator('[data-test=notes]').fill(notes);
  await page.locator('[data-test=full-file]').setInputFiles(file);
}

async function postAndWait(page, timeout = 60000) {
  await page.locator('[data-test=post-release]').click();
  const status = page.locator('[data-test=upload-status]');
  await status.locator('[data-test=posted], .alert.error').first().waitFor({ timeout });
  const err = status.locator('.alert.error');
  if (await err.count()) assert.fail('posting failed: ' + (await err.textContent()));
}

test('the upload form checks the fields before sending', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/releases');
  await page.locator('[data-test=new-release]').click();
  await page.locator('[data-test=version]').fill('1.256.0');
  await page.locator('[data-test=ecu-id]').fill('ECU_1');
  let posts = 0;
  page.on('request', (r) => { if (r.method() !== 'GET') posts++; });
  await page.locator('[data-test=post-release]').click();
  const errs = await page.locator('[data-test=upload-form] .field-error').allTextContents();
  const text = errs.join(' | ');
  assert.match(text, /at most 255/);
  assert.match(text, /ECU_001\.\.ECU_999/);
  assert.match(text, /title is required/);
  assert.match(text, /choose the full image/);
  assert.equal(posts, 0, 'nothing was sent');
  await shot(page, '03-upload-validation');
  await context.close();
});

test('upload a 12 MiB full image in pieces with a dropped connection, then a release with a differential image; both on the board', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/releases');
  const big = join(FILES, 'big-2.0.0.bin');
  const big2 = join(FILES, 'big-2.1.0.bin');
  const delta = join(FILES, 'big-2.1.0.delta.swpg');
  // the connection drops once, on the second piece of the first upload
  let puts = 0, dropped = 0;
  const offsets = [];
  await page.route(/\/api\/v1\/uploads\/[^/?]+\?offset=\d+$/, async (route) => {
    if (route.request().method() !== 'PUT') return route.continue();
    puts++;
    offsets.push(Number(new URL(route.request().url()).searchParams.get('offset')));
    if (puts === 2 && dropped === 0) {
      dropped++;
      return route.abort('connectionreset');
    }
    return route.continue();
  });
  await fillRelease(page, { title: 'Gateway firmware 2.0', version: '2.0.0', ecu: 'ECU_032', hw: 'HW-2-032', file: big, notes: 'A 12 MiB image, uploaded in 4 MiB pieces.' });
  const t0 = Date.now();
  await postAndWait(page, 120000);
  const secs = (Date.now() - t0) / 1000;
  assert.equal(dropped, 1, 'one piece was dropped');
  assert.ok(puts >= 4, `at least 4 PUTs (3 pieces + the retried one): ${puts} at ${offsets}`);
  const note = await page.locator('[data-test=progress] .bar-note').first().textContent();
  assert.match(note, /resumed/, 'the progress note says the upload resumed');
  const size = statSync(big).size;
  console.log(`# 12 MiB upload with one dropped piece: ${secs.toFixed(1)} s (${(size / 1048576 / secs).toFixed(1)} MiB/s incl. hashing and package build), PUT offsets ${offsets.join(',')}`);
  await shot(page, '04-upload-progress');
  const list = await inPage(page, 'GET', '/api/v1/releases?hardware_id=HW-2-032');
  const r1 = list.data.items.find((r) => r.version === '2.0.0');
  assert.ok(r1, 'release 2.0.0 exists');
  assert.equal(r1.image.sha256, sha256(big), 'the stored image is the file, byte for byte');
  assert.equal(r1.image.length, size);
  shared.bigRelease = r1.id;
  await page.unroute(/\/api\/v1\/uploads\//);

  // the new build with the operator's differential image against 2.0.0
  await fillRelease(page, { title: 'Gateway firmware 2.1', version: '2.1.0', ecu: 'ECU_032', hw: 'HW-2-032', file: big2 });
  await page.locator('[data-test=delta-mode-upload]').check();
  await page.locator('[data-test=delta-file]').setInputFiles(delta);
  await page.locator(`[data-test=delta-base] option[value="${r1.id}"]`).waitFor({ state: 'attached' });
  await page.locator('[data-test=delta-base]').selectOption(r1.id);
  await postAndWait(page, 120000);
  const list2 = await inPage(page, 'GET', '/api/v1/releases?hardware_id=HW-2-032');
  const r2 = list2.data.items.find((r) => r.version === '2.1.0');
  assert.ok(r2 && r2.delta, 'release 2.1.0 has a delta');
  assert.equal(r2.delta.base_version, '2.0.0');
  assert.equal(r2.image.sha256, sha256(big2));
  assert.equal(r2.delta.source, 'uploaded', 'the delta is the operator\'s');
  // checked in the background: ready once applied to 2.0.0 it gave 2.1.0
  await page.waitForFunction(async (id) => {
    const res = await fetch(`/api/v1/releases/${id}`);
    return res.ok && (await res.json()).delta.state === 'ready';
  }, r2.id, { timeout: 120000, polling: 200 });
  const d2 = (await inPage(page, 'GET', `/api/v1/releases/${r2.id}`)).data.delta;
  console.log(`# operator delta: file ${statSync(delta).size} bytes, release delta ${d2.length} bytes (sha ${d2.sha256 === sha256(delta) ? 'equal to the file' : 'differs from the file'})`);
  // both on the board, the delta with its size
  const rows = page.locator('[data-test=release-row]');
  await page.locator('[data-test=release-row]', { hasText: 'Gateway firmware 2.1' }).waitFor();
  await page.locator('[data-test=release-row]', { hasText: 'Gateway firmware 2.0' }).waitFor();
  const r2row = page.locator('[data-test=release-row]', { hasText: 'Gateway firmware 2.1' });
  assert.match(await r2row.locator('[data-test=delta]').textContent(), /from 2\.0\.0/);
  assert.match(await r2row.locator('[data-test=delta-source]').textContent(), /uploaded/, 'the board says who made the delta');
  assert.ok(await rows.count() >= 2);
  await page.locator('[data-test=new-release]').click(); // fold the panel for the screenshot
  await shot(page, '05-notice-board');
  // the search box (q): one of the two
  await page.locator('[data-test=release-search]').fill('firmware 2.1');
  await page.waitForFunction(() => {
    const rows = document.querySelectorAll('[data-test=release-row]');
    return rows.length === 1 && rows[0].textContent.includes('Gateway firmware 2.1');
  }, null, { timeout: 10000 });
  assert.match(page.url(), /q=firmware/, 'the search is in the URL');
  await context.close();
});

test('an upload cut by a page reload resumes where the server stands when the same file is chosen again', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/releases');
  const file = join(FILES, 'big-2.0.0.bin'); // 12 MiB: three pieces
  const offsets = [];
  let creates = 0;
  let firstPieceDone;
  const firstPiece = new Promise((res) => { firstPieceDone = res; });
  await page.route(/\/api\/v1\/uploads(\/|$|\?)/, async (route) => {
    const req = route.request();
    if (req.method() === 'POST') creates++;
    const m = /[?&]offset=(\d+)/.exec(req.url());
    if (req.method() === 'PUT' && m) {
      offsets.push(Number(m[1]));
      if (Number(m[1]) > 0 && offsets.filter((o) => o > 0).length === 1) {
        firstPieceDone(); // the second piece never leaves: the page is reloaded meanwhile
        return;
      }
    }
    await route.continue();
  });
  await fillRelease(page, { title: 'Gateway firmware 2.0.1', version: '2.0.1', ecu: 'ECU_032', hw: 'HW-2-032', file });
  await page.locator('[data-test=post-release]').click();
  await firstPiece;
  await page.reload(); // the browser drops the upload in the middle
  await page.locator('[data-test=user-name]').waitFor();
  assert.equal(page.beforeUnloads, 1, 'leaving the page mid-upload asked first');
  const before = offsets.length;
  await fillRelease(page, { title: 'Gateway firmware 2.0.1', version: '2.0.1', ecu: 'ECU_032', hw: 'HW-2-032', file });
  await postAndWait(page, 120000);
  const after = offsets.slice(before);
  console.log(`# upload resumed after a reload: PUT offsets before ${offsets.slice(0, before).join(',')}, after ${after.join(',')}; uploads created ${creates}`);
  assert.equal(creates, 1, 'no second upload was created: the first one went on');
  assert.equal(after[0], 4194304, 'the first piece after the reload starts where the server stood');
  const list = await inPage(page, 'GET', '/api/v1/releases?hardware_id=HW-2-032');
  const r = list.data.items.find((x) => x.version === '2.0.1');
  assert.ok(r, 'release 2.0.1 exists');
  assert.equal(r.image.sha256, sha256(file), 'the resumed image is the file, byte for byte');
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('pqota.upload:')).length), 0,
    'the used-up upload is forgotten');
  await page.unroute(/\/api\/v1\/uploads(\/|$|\?)/);
  await context.close();
});

test('cancelling an upload posts no release, whenever the cancel comes', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/releases');
  const file = join(FILES, 'big-2.1.0.bin');
  for (const when of ['hashing', 'uploading']) {
    let release;
    const held = new Promise((res) => { release = res; });
    // hold the upload's creation (cancel lands while it waits: as during hashing) or its
    // first piece (cancel lands mid-upload)
    const pattern = when === 'hashing' ? /\/api\/v1\/uploads$/ : /\/api\/v1\/uploads\/[^?]+\?offset=0$/;
    await page.route(pattern, async (route) => { release(); await new Promise((r) => setTimeout(r, 500)); await route.continue().catch(() => {}); });
    await fillRelease(page, { title: `Cancelled ${when}`, version: when === 'hashing' ? '7.0.0' : '7.0.1', ecu: 'ECU_032', hw: 'HW-2-032', file });
    await page.locator('[data-test=post-release]').click();
    await held;
    await page.locator('button', { hasText: 'Cancel upload' }).click();
    await page.locator('[data-test=upload-status]', { hasText: 'Upload cancelled' }).waitFor({ timeout: 20000 });
    await page.unroute(pattern);
  }
  const list = await inPage(page, 'GET', '/api/v1/releases?hardware_id=HW-2-032');
  assert.deepEqual(list.data.items.filter((r) => r.version.startsWith('7.0.')).map((r) => r.version), [], 'no cancelled release was posted');
  await context.close();
});

test('a new release appears live on an open board; its <script>/<img onerror> title renders as text', async () => {
  const watcher = await newPage();
  await signIn(watcher.page, VIEWER, '#/releases');
  await watcher.page.locator('[data-test=release-row]').first().waitFor();
  await watcher.page.evaluate(() => { window.__noReload = 1; });
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/releases');
  await fillRelease(page, { title: XSS_TITLE, version: '1.1.0', ecu: 'ECU_011', hw: 'HW-1-011', file: join(FILES, 'small-1.1.0.bin'), notes: '<b>not bold</b>' });
  await postAndWait(page);
  const list = await inPage(page, 'GET', '/api/v1/releases?hardware_id=HW-1-011');
  shared.smallRelease = list.data.items.find((r) => r.version === '1.1.0').id;
  for (const p of [page, watcher.page]) {
    const row = p.locator(`[data-release="${shared.smallRelease}"]`);
    await row.waitFor({ timeout: 15000 });
    assert.equal(await row.locator('[data-test=release-title]').textContent(), XSS_TITLE);
    assert.equal(await p.locator('img[src=x]').count(), 0, 'no injected <img>');
    assert.equal(await p.evaluate(() => window.__xss), undefined, 'no injected script ran');
    assert.equal(p.dialogs.length, 0);
  }
  assert.equal(await watcher.page.evaluate(() => window.__noReload), 1, 'the viewer\'s board updated without a reload');
  await shot(watcher.page, '06-board-live-xss');
  await watcher.context.close();
  await context.close();
});

test('a release whose delta the server computes from an earlier release', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/releases');
  await fillRelease(page, { title: 'Brake ECU app 1.2', version: '1.2.0', ecu: 'ECU_011', hw: 'HW-1-011', file: join(FILES, 'small-1.2.0.bin') });
  await page.locator('[data-test=delta-mode-compute]').check();
  await page.locator(`[data-test=delta-base] option[value="${shared.smallRelease}"]`).waitFor({ state: 'attached' });
  await page.locator('[data-test=delta-base]').selectOption(shared.smallRelease);
  await postAndWait(page);
  const list = await inPage(page, 'GET', '/api/v1/releases?hardware_id=HW-1-011');
  const r = list.data.items.find((x) => x.version === '1.2.0');
  assert.ok(r && r.delta, 'release 1.2.0 has a delta');
  assert.equal(r.delta.base_version, '1.1.0');
  assert.equal(r.delta.source, 'computed');
  assert.ok(['queued', 'running', 'ready'].includes(r.delta.state), `the delta is made in the background (${r.delta.state})`);
  const row = page.locator(`[data-release="${r.id}"]`);
  await row.waitFor();
  assert.match(await row.locator('[data-test=delta]').textContent(), /from 1\.1\.0/);
  assert.match(await row.locator('[data-test=delta-source]').textContent(), /computed/);
  // the board follows the delta's state (release_delta events) until it is ready, with its size
  await row.locator('[data-test=delta][data-state=ready]').waitFor({ timeout: 60000 });
  assert.equal(await row.locator('[data-test=delta-state]').count(), 0, 'a ready delta shows no state label');
  const done = (await inPage(page, 'GET', `/api/v1/releases/${r.id}`)).data.delta;
  assert.equal(done.state, 'ready');
  assert.match(await row.locator('[data-test=delta]').textContent(), /\d/, 'the ready delta shows its size');
  console.log(`# computed delta: ${done.length} bytes for a ${r.image.length}-byte image`);
  await context.close();
});

// --- roles, CSRF ------------------------------------------------------------------------------

test('a viewer cannot upload or start: no controls, and the API answers 403', async () => {
  const { context, page } = await newPage();
  await signIn(page, VIEWER, '#/releases');
  await page.locator('[data-test=release-list] table').waitFor();
  assert.equal(await page.locator('[data-test=upload-panel]').count(), 0, 'no upload panel');
  assert.equal(await page.locator('nav a[data-nav=audit]').count(), 0, 'no audit page in the navigation');
  await page.goto(URL0 + '/#/campaigns');
  await page.locator('[data-test=campaign-list]').waitFor();
  assert.equal(await page.locator('[data-test=new-campaign]').count(), 0, 'no new-campaign button');
  // forced: the viewer's session, with its CSRF token, calling the operator routes
  const up = await inPage(page, 'POST', '/api/v1/uploads', { body: { size: 10 } });
  assert.equal(up.status, 403, JSON.stringify(up.data));
  assert.equal(up.data.error.code, 'forbidden');
  const camp = await inPage(page, 'POST', '/api/v1/campaigns', { body: { name: 'viewer', release_ids: [shared.smallRelease] } });
  assert.equal(camp.status, 403);
  const aud = await inPage(page, 'GET', '/api/v1/audit');
  assert.equal(aud.status, 403);
  await page.goto(URL0 + '/#/audit');
  await page.locator('.alert.error').waitFor();
  await shot(page, '07-viewer');
  shared.viewer = { context, page }; // reused for the campaign page below
});

test('CSRF: a POST without the token is refused (403), and so is a cross-site form POST', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/releases');
  const r = await inPage(page, 'POST', '/api/v1/uploads', { body: { size: 10 }, csrf: false });
  assert.equal(r.status, 403);
  assert.equal(r.data.error.code, 'csrf');
  const wrong = await inPage(page, 'POST', '/api/v1/uploads', { body: { size: 10 }, csrf: false, headers: { 'X-CSRF-Token': 'nope' } });
  assert.equal(wrong.status, 403);
  // a page of another site posts a form to the API with the browser's cookies
  const other = await context.newPage();
  await other.setContent(`<form id=f method=POST action="${URL0}/api/v1/campaigns" enctype="text/plain"><input name='{"name":"x","release_ids":["${shared.smallRelease}"],"z":"' value='"}'></form>`);
  const [resp] = await Promise.all([other.waitForNavigation(), other.evaluate(() => document.getElementById('f').submit())]);
  assert.ok([401, 403].includes(resp.status()), `cross-site POST refused: ${resp.status()}`);
  const list = await inPage(page, 'GET', '/api/v1/campaigns');
  assert.ok(!(list.data.campaigns || list.data.items).some((c) => c.name === 'x'), 'no campaign was created');
  await context.close();
});

// --- campaigns --------------------------------------------------------------------------------

async function createCampaign(page, name, vins, shotName) {
  await page.goto(URL0 + '/#/campaigns/new');
  await page.locator('[data-test=c-name]').fill(name);
  await page.locator(`[data-test=c-release][value="${shared.smallRelease}"]`).check();
  await page.locator('[data-test=c-vins]').fill(vins.join('\n'));
  if (shotName) await shot(page, shotName);
  await page.locator('[data-test=c-create]').click();
  await page.waitForURL(/#\/campaigns\/[0-9a-f-]{36}$/);
  await page.locator('[data-test=campaign-state] .badge').waitFor();
  return page.url().split('/').pop();
}

test('create and start a campaign to two real vehicles; it reaches completed live, without a reload', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/campaigns');
  const id = await createCampaign(page, 'ECU_011 1.1.0 to the console fleet', VINS_OK, '08-campaign-new');
  shared.okCampaign = id;
  assert.equal(await page.locator('[data-test=campaign-state]').textContent(), 'draft');
  await page.evaluate(() => { window.__noReload = 1; });
  await page.locator('[data-test=action-start]').click();
  // start asks first
  await page.locator('[data-test=confirm-ok]').click();
  await page.locator('[data-test=campaign-state] .st-running, [data-test=campaign-state] .st-completed').first().waitFor();
  const t0 = Date.now();
  await page.locator('[data-test=campaign-state] .st-completed').waitFor({ timeout: 120000 });
  console.log(`# campaign to ${VINS_OK.length} agents: completed ${((Date.now() - t0) / 1000).toFixed(1)} s after start, seen live`);
  assert.equal(await page.evaluate(() => window.__noReload), 1, 'no reload');
  await page.locator('[data-test=count-completed] .tile-n', { hasText: String(VINS_OK.length) }).waitFor({ timeout: 10000 });
  await page.locator('[data-test=dep-row][data-state=completed]').nth(VINS_OK.length - 1).waitFor();
  // live: the page had the deployment transitions from the event stream
  const lat = await page.evaluate(() => window.__pqotaEventLatency || []);
  assert.ok(lat.length >= VINS_OK.length, `deployment events reached the page: ${lat.length}`);
  const s = [...lat].sort((a, b) => a - b);
  console.log(`# event latency (server transition -> page): n=${s.length} median ${s[s.length >> 1]} ms, max ${s[s.length - 1]} ms`);
  const vl = (await page.evaluate(() => window.__pqotaVehicleLatency || [])).sort((a, b) => a - b);
  assert.ok(vl.length >= VINS_OK.length, `deployment events caused by the vehicles' messages carry their time: ${vl.length}`);
  console.log(`# event latency (vehicle's status message -> page): n=${vl.length} median ${vl[vl.length >> 1]} ms, max ${vl[vl.length - 1]} ms`);
  assert.ok(await page.locator('[data-test=chart] svg path.series').count() >= 1, 'the progress chart is drawn');
  const ys = (await page.locator('[data-test=chart] svg text.axis').allTextContents()).filter((t) => /^\d+$/.test(t)).map(Number);
  assert.equal(Math.max(...ys), VINS_OK.length, 'the chart counts the campaign\'s vehicles, no more');
  await shot(page, '09-campaign-completed');
  await page.goto(URL0 + '/#/campaigns');
  await page.locator('[data-test=campaign-row]').first().waitFor();
  await shot(page, '10-campaigns');
  // the viewer sees the campaign but no action button
  const v = shared.viewer.page;
  await v.goto(URL0 + '/#/campaigns/' + id);
  await v.locator('[data-test=campaign-state] .badge').waitFor();
  assert.equal(await v.locator('[data-test^=action-]').count(), 0, 'no action buttons for a viewer');
  const forced = await inPage(v, 'POST', `/api/v1/campaigns/${id}/cancel`);
  assert.equal(forced.status, 403);
  await shared.viewer.context.close();
  await context.close();
});

test('a campaign with a failing vehicle shows the failure and its cause', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/campaigns');
  const id = await createCampaign(page, 'ECU_011 1.1.0 to the failing vehicle', [VIN_FAIL]);
  await page.locator('[data-test=action-start]').click();
  await page.locator('[data-test=confirm-ok]').click();
  const row = page.locator(`[data-test=dep-row][data-vin="${VIN_FAIL}"]`);
  await page.locator(`[data-test=dep-row][data-vin="${VIN_FAIL}"][data-state=failed], [data-test=dep-row][data-vin="${VIN_FAIL}"][data-state=rolled_back]`)
    .first().waitFor({ timeout: 120000 });
  // the cause of the failure is on the row
  await page.waitForFunction((vin) => {
    const c = document.querySelector(`[data-test=dep-row][data-vin="${vin}"] [data-test=dep-cause]`);
    return c && c.textContent.trim().length > 0;
  }, VIN_FAIL, { timeout: 15000 });
  const cause = await row.locator('[data-test=dep-cause]').textContent();
  const code = await row.locator('.err-code').count() ? await row.locator('.err-code').textContent() : '';
  console.log(`# failing vehicle: state ${await row.getAttribute('data-state')}, error ${code || '-'}, cause: ${cause}`);
  // the failed filter shows it
  await page.locator('[data-test=dep-filter-failed]').click();
  await row.waitFor();
  // one vehicle of one failed is over the 10 % error threshold: the engine pauses the
  // campaign (the reason is shown) unless every deployment had ended first (completed)
  await page.locator('[data-test=campaign-state] .st-paused, [data-test=campaign-state] .st-completed').first().waitFor({ timeout: 30000 });
  const state = await page.locator('[data-test=campaign-state]').textContent();
  if (state === 'paused') assert.match(await page.locator('[data-test=pause-reason]').textContent(), /auto_paused/);
  // the history of the deployment: its transition chain
  await row.locator('button', { hasText: 'history' }).click();
  await page.locator('[data-test=chain] li').first().waitFor();
  await shot(page, '11-campaign-failure');
  await context.close();
});

// --- fleet, vehicle, diagnostics, audit -----------------------------------------------------

test('fleet: live online dots; a hostile vehicle model renders as text; the vehicle page', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/fleet?vin_prefix=WCONSOLE');
  await page.locator('[data-test=fleet-list][data-state=loaded]').waitFor();
  const x = page.locator(`[data-test=vehicle-row][data-vin="${VIN_XSS}"]`);
  assert.equal(await x.locator('[data-test=model]').textContent(), XSS_MODEL);
  assert.equal(await page.locator('img[src=x]').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(page.dialogs.length, 0);
  for (const v of [...VINS_OK, VIN_FAIL]) {
    assert.equal(await page.locator(`[data-test=vehicle-row][data-vin="${v}"] .dot.on`).count(), 1, `${v} online`);
  }
  await shot(page, '12-fleet');
  // the failing vehicle's agent dies: its dot goes grey on the open page (its MQTT last
  // will, a presence event), without a reload
  const pid = Number(process.env.PQOTA_FAIL_AGENT_PID);
  if (pid) {
    await page.evaluate(() => { window.__noReload = 1; });
    process.kill(pid, 'SIGKILL');
    await page.locator(`[data-test=vehicle-row][data-vin="${VIN_FAIL}"] .dot.off`).waitFor({ timeout: 20000 });
    assert.equal(await page.evaluate(() => window.__noReload), 1);
  }
  await page.goto(URL0 + '/#/fleet/' + VIN_XSS);
  await page.locator('[data-test=vehicle-model]').waitFor();
  assert.equal(await page.locator('[data-test=vehicle-model]').textContent(), XSS_MODEL);
  assert.equal(await page.locator('img[src=x]').count(), 0);
  await page.goto(URL0 + '/#/fleet/' + VINS_OK[0]);
  await page.locator('details.zone').first().waitFor();
  // the campaign of the earlier spec reached this vehicle: its deployment is listed
  await page.locator('[data-test=vehicle-deployment]').first().waitFor({ timeout: 10000 });
  await shot(page, '13-vehicle');
  assert.equal(page.errors.length, 0, page.errors.join('\n'));
  await context.close();
});

test('diagnostics: 22 F190 to a vehicle, the answer aggregated live with the VIN as text', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/diagnostics');
  // a request to the whole fleet asks first, and a state-changing one says so; cancelled,
  // nothing is sent
  const batches0 = (await inPage(page, 'GET', '/api/v1/diagnostics')).data.total;
  await page.locator('[data-test=diag-target-kind]').selectOption('all');
  await page.locator('[data-test=diag-ecu]').fill('ECU_011');
  await page.locator('[data-test=diag-request]').fill('11 01');
  await page.locator('[data-test=diag-send]').click();
  const dlg = page.locator('dialog.confirm');
  await dlg.waitFor();
  assert.match(await dlg.textContent(), /state-changing/);
  await page.locator('[data-test=confirm-cancel]').click();
  await dlg.waitFor({ state: 'detached' });
  assert.equal((await inPage(page, 'GET', '/api/v1/diagnostics')).data.total, batches0, 'a cancelled fleet request sends nothing');
  await page.locator('[data-test=diag-target-kind]').selectOption('vin');
  await page.locator('[data-test=diag-target]').fill(VINS_OK[0]);
  await page.locator('[data-test=diag-ecu]').fill('ECU_011');
  await page.locator('[data-test=diag-request]').fill('22 F190');
  await page.locator('[data-test=diag-send]').click();
  await page.waitForURL(/#\/diagnostics\/[0-9a-f-]{36}$/);
  const row = page.locator(`[data-test=diag-row][data-vin="${VINS_OK[0]}"]`);
  await row.locator('.badge.st-positive').waitFor({ timeout: 20000 });
  const txt = await row.locator('[data-test=did-text]').textContent();
  console.log(`# 22 F190: positive, text ${txt}`);
  assert.ok(txt.includes(VINS_OK[0]), 'the VIN DID (padded with NULs) reads as the VIN');
  // a negative answer is named; a suppressed positive answer (3E 80) is reported as such
  for (const [req, sel, what] of [['22 FFFF', '.badge.st-negative', /requestOutOfRange/], ['3E 80', '.badge.st-suppressed', /suppressed/]]) {
    const before = new URL(page.url()).hash;
    await page.locator('[data-test=diag-request]').fill(req);
    await page.locator('[data-test=diag-send]').click();
    await page.waitForFunction((b) => location.hash !== b || document.querySelector('.diag-out .alert.error, .diag-form .field-error:not(:empty)'), before);
    const err = page.locator('.diag-out .alert.error, .diag-form .field-error:not(:empty)');
    if (await err.count()) assert.fail(`${req}: ${(await err.allTextContents()).join('; ')}`);
    const r = page.locator(`[data-test=diag-row][data-vin="${VINS_OK[0]}"]`);
    await r.locator(sel).waitFor({ timeout: 20000 });
    assert.match(await r.textContent(), what);
  }
  await shot(page, '14-diagnostics');
  await context.close();
});

test('audit (admin): records with filters', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/audit');
  await page.locator('[data-test=audit-row]').first().waitFor();
  await page.locator('[data-test=a-action]').fill('campaign.start');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('[data-test=audit-row] .chip')];
    return rows.length > 0 && rows.every((r) => r.textContent === 'campaign.start');
  }, null, { timeout: 10000 });
  await shot(page, '15-audit');
  await context.close();
});

test(`fleet of ${SEEDED || 'no'} seeded vehicles: paging, total, time to first render`, { skip: SEEDED ? false : 'seed_fleet is not built' }, async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/releases');
  const t0 = Date.now();
  await page.goto(URL0 + '/#/fleet');
  await page.locator('[data-test=fleet-list][data-state=loaded]').waitFor();
  const wall = Date.now() - t0;
  const ms = await page.evaluate(() => window.__pqotaFleetRenderMs);
  const total = await page.locator('[data-test=fleet-total]').textContent();
  console.log(`# fleet page, ${total}: first page rendered ${ms.toFixed(0)} ms after the route (${wall} ms from navigation)`);
  await shot(page, '16-fleet-10000');
  const n = Number(total.replace(/[^0-9]/g, ''));
  assert.ok(n >= SEEDED, `total ${n} >= ${SEEDED}`);
  assert.equal(await page.locator('[data-test=vehicle-row]').count(), 50, 'one page of 50 rows');
  const first = await page.locator('[data-test=vehicle-row]').first().getAttribute('data-vin');
  const t1 = Date.now();
  await page.locator('[data-test=next]').click();
  await page.locator('[data-test=fleet-list][data-offset="50"]').waitFor();
  console.log(`# next page: ${Date.now() - t1} ms`);
  assert.notEqual(await page.locator('[data-test=vehicle-row]').first().getAttribute('data-vin'), first);
  // the last page has the rest
  await page.locator('[data-test=pager] button', { hasText: 'Last' }).click();
  const lastOff = Math.floor((n - 1) / 50) * 50;
  await page.locator(`[data-test=fleet-list][data-offset="${lastOff}"]`).waitFor();
  assert.equal(await page.locator('[data-test=vehicle-row]').count(), n - lastOff);
  // a VIN prefix filter: the seeded ones only
  await page.locator('[data-test=f-vin]').fill('WSEED');
  await page.waitForFunction((s) => document.querySelector('[data-test=fleet-total]').textContent.replace(/[^0-9]/g, '') === String(s), SEEDED);
  await page.locator('[data-test=f-online]').selectOption('true');
  await page.locator('[data-test=fleet-list][data-state=loaded] [data-test=vehicle-row]').first().waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-test=vehicle-row]')].every((r) => r.querySelector('.dot.on')));
  await shot(page, '17-fleet-10000-filtered');
  await context.close();
});

test('sign-out ends the session: the old cookie then gets 401', async () => {
  const { context, page } = await newPage();
  await signIn(page, ADMIN, '#/releases');
  const saved = (await context.cookies()).filter((c) => c.name === '__Host-pqota_session');
  assert.equal(saved.length, 1);
  assert.equal((await inPage(page, 'GET', '/api/v1/session')).status, 200);
  await page.locator('[data-test=signout]').click();
  await page.locator('[data-test=api-key]').waitFor();
  await context.addCookies(saved); // the browser kept (or was given back) the old cookie
  const r = await inPage(page, 'GET', '/api/v1/session');
  assert.equal(r.status, 401);
  const r2 = await inPage(page, 'GET', '/api/v1/releases');
  assert.equal(r2.status, 401);
  await context.close();
});
