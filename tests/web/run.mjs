#!/usr/bin/env node
// Browser test of the admin web page (issue 8, PRODUCT.md C10).
//
// Starts a real `idprov serve` (no DNS-SD, 127.0.0.1, a fresh data
// directory), drives Debian's Chromium headless through playwright-core, and
// checks the administrator's journey step by step: sign in with the one-time
// token, watch a real device request arrive in the waiting queue, approve
// it, see the device's next request Approved, revoke it, import a CSV with a
// bad row, register a label, and the page's defences (a device's MAC
// rendered as text, cross-site and token-less requests refused).
//
//   node tests/web/run.mjs            (after `npm ci` in tests/web and `cargo build -p idprov`)
//
// Environment: IDPROV_BIN (default target/debug/idprov), CHROMIUM (default
// /usr/bin/chromium), IDPROV_WEB_SCREENSHOTS (default docs/screenshots: the
// README's dashboard.png and waiting-queue.png, rewritten by every run),
// IDPROV_WEB_KEEP=1 keeps the temporary directory.
// Prints one line per step; exits 1 on the first failure, after stopping
// the server and the browser.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.resolve(ROOT, process.env.IDPROV_BIN || 'target/debug/idprov');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = process.env.IDPROV_WEB_SCREENSHOTS
  ? path.resolve(process.env.IDPROV_WEB_SCREENSHOTS)
  : path.join(ROOT, 'docs', 'screenshots');
/** The whole run; a hang anywhere ends as a failure, not a stuck CI job. */
const OVERALL_TIMEOUT_MS = 180_000;
/** How long the page may take to show something (the queue polls every 3 s). */
const UI_TIMEOUT_MS = 15_000;
const MAC = '<script>alert(1)</script>';

// ------------------------------------------------------------------ harness

// Loaded here rather than by a static import, so a missing install says what to do.
const { chromium } = await import('playwright-core').catch(() => {
  console.log('web: playwright-core is not installed: run `npm ci` in tests/web');
  process.exit(1);
});
if (!fs.existsSync(CHROMIUM)) {
  console.log(`web: ${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) or set CHROMIUM`);
  process.exit(1);
}

const started = Date.now();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'idprov-web-'));
const dataDir = path.join(tmp, 'data');
const serverLog = path.join(tmp, 'server.log');
let server = null;
let context = null;
let stepNumber = 0;

/** Runs one named, asserted step and prints its line. */
async function step(name, fn) {
  stepNumber += 1;
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    console.log(`not ok ${stepNumber} - ${name}`);
    throw e;
  }
  console.log(`ok ${stepNumber} - ${name} (${Date.now() - t0} ms)`);
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An HTTPS request from node (not the browser): the device, the CLI's administrator, or a forger. */
function request(method, url, { headers = {}, body = null, ca, cert, key } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method,
      headers: body ? { 'Content-Length': Buffer.byteLength(body), ...headers } : headers,
      ca,
      cert,
      key,
      // Trust only this server's CA: the test does not skip verification.
      rejectUnauthorized: Boolean(ca),
      timeout: 10_000,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: res.statusCode, headers: res.headers, bytes, text: bytes.toString('utf8') });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

async function startServer(port) {
  assert(fs.existsSync(BIN), `${BIN} exists (build it with cargo build -p idprov, or set IDPROV_BIN)`);
  const log = fs.openSync(serverLog, 'a');
  server = spawn(BIN, ['serve', '--no-dns-sd', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    stdio: ['ignore', log, log],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' },
  });
  let exited = null;
  server.on('exit', (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`idprov serve exited early (${JSON.stringify(exited)})`);
    const chain = path.join(dataDir, 'ca-chain.pem');
    if (fs.existsSync(chain)) {
      try {
        const r = await request('GET', `https://127.0.0.1:${port}/readyz`, { ca: fs.readFileSync(chain) });
        if (r.status === 200) return fs.readFileSync(chain);
      } catch { /* not listening yet */ }
    }
    await sleep(200);
  }
  throw new Error('idprov serve did not become ready within 60 s');
}

async function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  const timer = setTimeout(() => server.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

async function cleanUp() {
  if (context) await context.close().catch(() => {});
  context = null;
  await stopServer().catch(() => {});
  if (!process.env.IDPROV_WEB_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
}

/** A fresh P-256 key, PKIX PEM, as a Go idprov device sends it. */
function newDeviceKey() {
  const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return publicKey.export({ type: 'spki', format: 'pem' });
}

/** PROTOCOL.md §9: SHA-256 of the CA certificate's DER, unpadded base64url. */
function fingerprintOf(pem) {
  const first = pem.toString().match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/)[0];
  return crypto.createHash('sha256').update(new crypto.X509Certificate(first).raw).digest('base64url');
}

/**
 * The signature of PROTOCOL.md §5: base64 HMAC-SHA256, keyed with the raw
 * secret, over Go's encoding of the request with "signature":"". Go escapes
 * < > & U+2028 U+2029 where JSON.stringify does not; the test's fields hold
 * no other character the two encoders treat differently.
 */
function sign(message, secret) {
  const go = (s) => JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const canonical = `{"deviceID":${go(message.deviceID)},"ip":${go(message.ip)},"mac":${go(message.mac)},"publicKeyPEM":${go(message.publicKeyPEM)},"signature":""}`;
  return crypto.createHmac('sha256', Buffer.from(secret, 'utf8')).update(canonical).digest('base64');
}

/** Decodes an 8-bit grayscale PNG (what the label sheets are) to {width, height, pixels}. */
function decodeGrayPng(png) {
  assert(png.subarray(0, 8).equals(Buffer.from('89504e470d0a1a0a', 'hex')), 'a PNG signature');
  let width = 0;
  let height = 0;
  const idat = [];
  for (let at = 8; at < png.length;) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert(data[8] === 8 && data[9] === 0 && data[12] === 0, 'the sheet is 8-bit grayscale, not interlaced');
    } else if (type === 'IDAT') {
      idat.push(data);
    }
    at += 12 + length;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const pixels = Buffer.alloc(width * height);
  // Undo the per-row filters (PNG spec §9; one byte per pixel).
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (width + 1)];
    const line = raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1));
    for (let x = 0; x < width; x++) {
      const a = x > 0 ? pixels[y * width + x - 1] : 0;
      const b = y > 0 ? pixels[(y - 1) * width + x] : 0;
      const c = x > 0 && y > 0 ? pixels[(y - 1) * width + x - 1] : 0;
      let predictor = 0;
      if (filter === 1) predictor = a;
      else if (filter === 2) predictor = b;
      else if (filter === 3) predictor = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      pixels[y * width + x] = (line[x] + predictor) & 0xff;
    }
  }
  return { width, height, pixels };
}

/**
 * A one-frame Y4M video of the top-left 640×480 of a grayscale image: what
 * Chromium's fake camera (--use-file-for-fake-video-capture) shows, looped.
 */
function y4mOf({ width, height, pixels }) {
  const [w, h] = [640, 480];
  const luma = Buffer.alloc(w * h, 255);
  for (let y = 0; y < Math.min(h, height); y++) {
    pixels.copy(luma, y * w, y * width, y * width + Math.min(w, width));
  }
  const chroma = Buffer.alloc((w / 2) * (h / 2) * 2, 128);
  return Buffer.concat([Buffer.from(`YUV4MPEG2 W${w} H${h} F10:1 Ip A1:1 C420jpeg\nFRAME\n`), luma, chroma]);
}

/** Percent-encodes everything but unreserved characters, as label URIs do. */
function labelEncode(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

// ------------------------------------------------------------------ the scenario

async function main() {
  const port = await freePort();
  const base = `https://127.0.0.1:${port}`;
  let ca;
  const provision = async (deviceID, publicKeyPEM, mac, secret = null) => {
    const message = { deviceID, ip: '10.0.0.5', mac, publicKeyPEM, signature: '' };
    if (secret !== null) message.signature = sign(message, secret);
    const body = JSON.stringify(message);
    const r = await request('POST', `${base}/idprov/provreq`, { ca, body, headers: { 'Content-Type': 'application/json' } });
    assert(r.status === 200, `provreq answered 200 (got ${r.status}: ${r.text})`);
    return JSON.parse(r.text);
  };

  await step('idprov serve starts with a fresh data directory', async () => {
    ca = await startServer(port);
  });

  await step('GET /admin/ serves the page with the CSP and security headers', async () => {
    const r = await request('GET', `${base}/admin/`, { ca });
    assert(r.status === 200, `status 200 (got ${r.status})`);
    const csp = r.headers['content-security-policy'] || '';
    for (const directive of ["default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]) {
      assert(csp.includes(directive), `CSP has ${directive} (got ${csp})`);
    }
    assert(!/unsafe-inline|unsafe-eval/.test(csp), 'CSP allows no inline script or eval');
    assert(r.headers['x-content-type-options'] === 'nosniff', 'X-Content-Type-Options: nosniff');
    assert(!r.headers['access-control-allow-origin'], 'no CORS header');
    assert(r.text.includes('/admin/assets/app.js'), 'the page loads app.js');
    for (const asset of ['app.js', 'app.css', 'jsqr.js', 'icon.svg']) {
      const a = await request('GET', `${base}/admin/assets/${asset}`, { ca });
      assert(a.status === 200, `${asset} is served (got ${a.status})`);
    }
  });

  const camera = path.join(tmp, 'camera.y4m');
  await step('a PNG label sheet for cam-1 (administrator certificate) becomes the fake camera picture', async () => {
    const r = await request('POST', `${base}/idprov/admin/labels`, {
      ca,
      cert: fs.readFileSync(path.join(dataDir, 'admin.pem')),
      key: fs.readFileSync(path.join(dataDir, 'admin.key')),
      body: JSON.stringify({ deviceIDs: ['cam-1'], format: 'png' }),
      headers: { 'Content-Type': 'application/json' },
    });
    assert(r.status === 200, `the labels endpoint answers 200 (got ${r.status}: ${r.text.slice(0, 200)})`);
    assert(/^image\/png/.test(r.headers['content-type'] || ''), `a PNG (got ${r.headers['content-type']})`);
    assert(/attachment/.test(r.headers['content-disposition'] || ''), 'served as an attachment');
    fs.writeFileSync(camera, y4mOf(decodeGrayPng(r.bytes)));
  });

  // The browser: Debian's Chromium, a throw-away profile, the server's
  // private CA accepted (ignoreHTTPSErrors) as an administrator would, and a
  // fake camera that films the label sheet above.
  const profile = path.join(tmp, 'chromium-profile');
  await step(`Chromium starts headless (${CHROMIUM})`, async () => {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${camera}`],
      ignoreHTTPSErrors: true,
      permissions: ['camera'],
      acceptDownloads: true,
      viewport: { width: 1280, height: 800 },
      timeout: 30_000,
    });
  });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  const page = context.pages()[0] || await context.newPage();
  const dialogs = [];
  const pageErrors = [];
  const cspViolations = [];
  page.on('dialog', (d) => { dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  const hashIs = (hash) => page.waitForFunction((h) => location.hash.startsWith(h), hash);
  const go = async (hash) => {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await hashIs(hash);
  };

  const password = `correct horse ${crypto.randomBytes(6).toString('hex')}`;

  await step('sign in with the one-time token from DATA/signin-token', async () => {
    const tokenFile = path.join(dataDir, 'signin-token');
    assert(fs.existsSync(tokenFile), 'the server wrote DATA/signin-token');
    const mode = fs.statSync(tokenFile).mode & 0o777;
    assert(mode === 0o600, `signin-token is 0600 (got ${mode.toString(8)})`);
    await page.goto(`${base}/admin/`);
    await page.locator('#signin-token').fill(fs.readFileSync(tokenFile, 'utf8').trim());
    await page.locator('#signin-token-form button[type=submit]').click();
    await hashIs('#/password');
    await page.getByRole('heading', { name: 'Signed in. Set a password?' }).waitFor();
    const cookie = (await context.cookies(base)).find((c) => c.name === 'idprov_session');
    assert(cookie, 'an idprov_session cookie is set');
    assert(cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict', `the cookie is HttpOnly, Secure, SameSite=Strict (got ${JSON.stringify(cookie)})`);
  });

  await step('set a password when the page offers it', async () => {
    await page.locator('#new-password').fill(password);
    await page.locator('#new-password-repeat').fill(password);
    await page.locator('#password-form button[type=submit]').click();
    await hashIs('#/dashboard');
    await page.locator('#summary .card').first().waitFor();
  });

  const deviceKey = newDeviceKey();
  await step('a real device request appears in the waiting queue without a reload', async () => {
    // Another device waiting already, so the queue is not empty when the page opens.
    const other = await provision('thermostat-3f', newDeviceKey(), 'a4:cf:12:9e:03:7b');
    assert(other.status === 'Waiting', `an unknown device is told Waiting (got ${other.status})`);
    await go('#/queue');
    await page.locator('tr[data-device="thermostat-3f"]').waitFor();
    const answer = await provision('web-1', deviceKey, MAC);
    assert(answer.status === 'Waiting', `web-1 is told Waiting (got ${answer.status})`);
    await page.locator('tr[data-device="web-1"]').waitFor(); // the 3 s refresh brings it
  });

  await step('the device-supplied MAC renders as literal text and runs nothing', async () => {
    const cell = page.locator('tr[data-device="web-1"] .claimed-mac');
    assert(await cell.textContent() === MAC, 'the MAC cell shows the text <script>alert(1)</script>');
    assert(await page.locator('tr[data-device="web-1"] script').count() === 0, 'no <script> element inside the row');
    assert(await page.locator('tr[data-device="web-1"] .claimed-ip').textContent() === '10.0.0.5', 'the claimed IP is shown');
    await sleep(500);
    assert(dialogs.length === 0, `no dialog fired (got ${dialogs.join('; ')})`);
  });

  await step(`screenshot ${path.relative(ROOT, SCREENSHOTS)}/waiting-queue.png`, async () => {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await page.locator('#toast').waitFor({ state: 'hidden' });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'waiting-queue.png') });
  });

  await step('approve web-1 in the page', async () => {
    await page.locator('tr[data-device="web-1"] button[data-action="approve"]').click();
    await page.locator('tr[data-device="web-1"] .badge.approved').waitFor();
  });

  await step("the device's next request is Approved with its certificate", async () => {
    const answer = await provision('web-1', deviceKey, MAC);
    assert(answer.status === 'Approved', `status Approved (got ${answer.status})`);
    const leaf = new crypto.X509Certificate(answer.clientCert.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/)[0]);
    assert(/CN=web-1/.test(leaf.subject), `the certificate names web-1 (got ${leaf.subject})`);
    assert(leaf.publicKey.export({ type: 'spki', format: 'pem' }) === deviceKey, 'the certificate carries the device key');
  });

  await step('the devices list shows web-1 Approved', async () => {
    await go('#/devices');
    await page.locator('tr[data-device="thermostat-3f"]').waitFor();
    await page.locator('#device-search').fill('web-');
    // The search applies as one types: only IDs with the prefix stay.
    await page.locator('tr[data-device="thermostat-3f"]').waitFor({ state: 'detached' });
    await page.locator('tr[data-device="web-1"] .badge.Approved').waitFor();
    assert(await page.evaluate(() => location.hash) === '#/devices?prefix=web-', 'the search is kept in the address');
  });

  await step('revoke web-1 from its detail view, behind a confirmation', async () => {
    await page.locator('tr[data-device="web-1"] a').click();
    await hashIs('#/devices/web-1');
    await page.locator('#device-detail h2', { hasText: 'Certificate history' }).waitFor();
    await page.locator('#revoke').click();
    const modal = page.locator('#modal');
    await modal.waitFor({ state: 'visible' });
    // Cancel first: nothing happens.
    await page.locator('#modal-cancel').click();
    await modal.waitFor({ state: 'hidden' });
    await page.locator('#device-status-value .badge.Approved').waitFor();
    await page.locator('#revoke').click();
    await page.locator('#revoke-reason').selectOption('keyCompromise');
    await page.locator('#revoke-note').fill('browser test');
    await page.locator('#modal-ok').click();
    await page.locator('.notice.ok', { hasText: 'Revoked 1 certificate' }).waitFor();
    await page.locator('#device-status-value .badge.Rejected').waitFor();
    await page.locator('#device-detail .badge.revoked').waitFor();
  });

  await step('a CSV with one bad row: its error by line before commit, then the import', async () => {
    const csv = path.join(tmp, 'devices.csv');
    // As a spreadsheet saves it: a byte-order mark, CRLF line ends, quoting.
    fs.writeFileSync(csv, `\ufeff${[
      'deviceID,secret,validUntil',
      'csv-1,S3CR3T-ONE-0123456789,',
      'bad/id,S3CR3T-TWO-0123456789,',
      '"csv-2","secret, with a comma",',
      '',
    ].join('\r\n')}`);
    await go('#/import');
    await page.locator('#import-file').setInputFiles(csv);
    const rejected = page.locator('#import-rejected tbody tr');
    await rejected.first().waitFor();
    assert(await rejected.count() === 1, `exactly one row is refused (got ${await rejected.count()})`);
    const cells = await rejected.first().locator('td').allTextContents();
    assert(cells[0] === '3', `the refused row is line 3 (got ${cells[0]})`);
    assert(cells[1] === 'bad/id', `the refused row names bad/id (got ${cells[1]})`);
    assert(/deviceID/i.test(cells[2]), `the error names the device ID (got ${cells[2]})`);
    // Dry run: nothing registered yet.
    const before = await page.evaluate(() => fetch('/idprov/admin/oob', { credentials: 'same-origin' }).then((r) => r.json()));
    assert(!before.items.some((s) => s.deviceID.startsWith('csv-')), 'the dry run registered nothing');
    const commit = page.locator('#import-commit');
    assert(await commit.textContent() === 'Import 2 rows', `the commit button offers 2 rows (got ${await commit.textContent()})`);
    await commit.click();
    await page.locator('#import-result .notice', { hasText: '2 rows registered' }).waitFor();
    const after = await page.evaluate(() => fetch('/idprov/admin/oob', { credentials: 'same-origin' }).then((r) => r.json()));
    const ids = after.items.map((s) => s.deviceID);
    assert(ids.includes('csv-1') && ids.includes('csv-2') && !ids.includes('bad/id'), `csv-1 and csv-2 are registered (got ${ids})`);
  });

  await step('a device holding an imported secret provisions itself with it', async () => {
    const answer = await provision('csv-2', newDeviceKey(), 'a4:cf:12:9e:03:80', 'secret, with a comma');
    assert(answer.status === 'Approved', `csv-2 is Approved on the OOB path (got ${answer.status})`);
  });

  await step('a label URI typed by a scanner registers its secret; a foreign CA is flagged', async () => {
    const fp = fingerprintOf(ca);
    await go('#/secrets');
    const label = page.locator('#label-uri');
    await label.waitFor();
    // A label printed for another CA: warned about, not registered.
    const foreign = crypto.createHash('sha256').update('another CA').digest('base64url');
    await label.fill(`idprov:1?id=label-0&s=${labelEncode('OTHER-CA-SECRET-12345')}&ca=${foreign}`);
    await label.press('Enter');
    await page.locator('#secret-result .notice.warn', { hasText: 'another CA' }).waitFor();
    // The right label, typed key by key and ended with Enter as a keyboard-wedge scanner does.
    await label.fill('');
    const secret = 'p&ss=w+rd/ü 7K3M';
    await label.pressSequentially(`idprov:1?id=label-1&s=${labelEncode(secret)}&ca=${fp}`, { delay: 2 });
    await page.locator('#label-state', { hasText: 'matches this server' }).waitFor();
    await page.keyboard.press('Enter');
    await page.locator('#secret-result .notice.ok', { hasText: 'Secret registered for label-1' }).waitFor();
    await page.locator('#secret-list tr[data-device="label-1"]').waitFor();
    assert(await page.locator('#secret-list tr[data-device="label-0"]').count() === 0, 'the foreign-CA label was not registered');
    assert(await label.inputValue() === '', 'the label field is cleared for the next scan');
  });

  await step('the camera scan decodes the label in the page (vendored jsQR) and registers it', async () => {
    await page.locator('#scan').click();
    await page.locator('#secret-result .notice.ok', { hasText: 'Secret registered for cam-1' }).waitFor();
    await page.locator('#secret-result .notice.ok', { hasText: 'replaced the previous secret' }).waitFor();
    await page.locator('#camera').waitFor({ state: 'hidden' });
    assert(await page.evaluate(() => typeof window.jsQR) === 'function', 'the decoder was loaded from /admin/assets/jsqr.js');
  });

  await step('a cross-site request with the session cookie is refused (403)', async () => {
    const cookie = (await context.cookies(base)).find((c) => c.name === 'idprov_session');
    const session = await page.evaluate(() => fetch('/admin/api/session', { credentials: 'same-origin' }).then((r) => r.json()));
    assert(session.csrf, 'the session has a CSRF token');
    const target = `${base}/idprov/admin/audit/checkpoints`;
    const headers = { Cookie: `idprov_session=${cookie.value}`, 'X-CSRF-Token': session.csrf, 'Content-Type': 'application/json' };
    const forged = await request('POST', target, { ca, body: '{}', headers: { ...headers, Origin: 'https://evil.example', 'Sec-Fetch-Site': 'cross-site' } });
    assert(forged.status === 403, `a cross-site Origin is refused with 403 (got ${forged.status}: ${forged.text})`);
    assert(!forged.headers['access-control-allow-origin'], 'no CORS header on the refusal');
    const noToken = await request('POST', target, { ca, body: 'x', headers: { Cookie: headers.Cookie, 'Content-Type': 'text/plain', Origin: base, 'Sec-Fetch-Site': 'same-origin' } });
    assert(noToken.status === 403, `a form-like request without the CSRF token is refused with 403 (got ${noToken.status}: ${noToken.text})`);
    // The same request from the page's own origin passes: the refusals above were the checks, not the cookie.
    const same = await request('POST', target, { ca, body: '{}', headers: { ...headers, Origin: base, 'Sec-Fetch-Site': 'same-origin' } });
    assert(same.status === 200, `the same request from the page's origin is accepted (got ${same.status}: ${same.text})`);
  });

  await step('labels: new secrets for a chosen device, the sheet downloaded', async () => {
    await go('#/labels');
    await page.locator('#label-ids').fill('csv-1');
    await page.locator('#label-format').selectOption('svg');
    await page.locator('#label-generate').click();
    await page.locator('#modal').waitFor({ state: 'visible' });
    assert(/Replace the secrets of 1 device/.test(await page.locator('#modal-title').textContent()), 'the confirmation says the secret is replaced');
    const downloading = page.waitForEvent('download');
    await page.locator('#modal-ok').click();
    const download = await downloading;
    const sheet = fs.readFileSync(await download.path(), 'utf8');
    assert(/<svg[\s>]/.test(sheet), 'the downloaded sheet is an SVG');
    await page.locator('#label-result .notice.ok').waitFor();
  });

  await step('the audit log shows the verified chain and the revocation', async () => {
    await go('#/audit');
    await page.locator('#audit-chain .notice.ok', { hasText: 'verifies' }).waitFor();
    await page.locator('#audit-list td', { hasText: 'certificate_revoked' }).first().waitFor();
    await page.locator('#audit-event').fill('request_approved');
    await page.locator('#audit-event').press('Enter');
    await page.waitForFunction(() => {
      const cells = [...document.querySelectorAll('#audit-list tbody tr td:nth-child(3)')].map((td) => td.textContent);
      return cells.length > 0 && cells.every((t) => t === 'request_approved');
    });
  });

  await step(`screenshot ${path.relative(ROOT, SCREENSHOTS)}/dashboard.png`, async () => {
    await go('#/dashboard');
    await page.locator('#toast').waitFor({ state: 'hidden' });
    await page.locator('#summary .card').first().waitFor();
    await page.locator('#recent-audit tbody tr').first().waitFor();
    await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard.png') });
  });

  await step('a 360 px wide screen shows every page without sideways scrolling', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    for (const hash of ['#/dashboard', '#/queue', '#/devices', '#/secrets', '#/import', '#/labels', '#/audit']) {
      await go(hash);
      await page.locator('main h1').first().waitFor();
      await sleep(300);
      const { width, culprit } = await page.evaluate(() => {
        // Names the innermost element that sticks out, for the failure message.
        const wide = [...document.querySelectorAll('main *')].filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5);
        const el = wide.find((w) => !wide.some((o) => o !== w && w.contains(o)));
        const culprit = el ? `<${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${String(el.className).split(' ').join('.')}` : ''}>` : 'none';
        return { width: document.documentElement.scrollWidth, culprit };
      });
      assert(width <= 360, `${hash} fits 360 px (scroll width ${width}; widest element ${culprit})`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step('sign out, then sign in again with name and password', async () => {
    await page.locator('#signout').click();
    await hashIs('#/signin');
    const status = await page.evaluate(() => fetch('/admin/api/session', { credentials: 'same-origin' }).then((r) => r.status));
    assert(status === 401, `the session is gone after signing out (got ${status})`);
    await page.locator('#signin-name').fill('admin');
    await page.locator('#signin-password').fill(password);
    await page.locator('#signin-password-form button[type=submit]').click();
    await hashIs('#/dashboard');
    await page.locator('#summary .card').first().waitFor();
  });

  await step('no dialog, page error or Content-Security-Policy violation during the run', async () => {
    assert(dialogs.length === 0, `no dialog (got ${dialogs.join('; ')})`);
    assert(pageErrors.length === 0, `no uncaught page error (got ${pageErrors.join('; ')})`);
    assert(cspViolations.length === 0, `no CSP violation (got ${cspViolations.join('; ')})`);
  });
}

// ------------------------------------------------------------------ run

const overall = setTimeout(async () => {
  console.log(`not ok - the run took longer than ${OVERALL_TIMEOUT_MS / 1000} s`);
  await cleanUp();
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    await cleanUp();
    process.exit(130);
  });
}

let failed = false;
try {
  await main();
  console.log(`web: all ${stepNumber} steps passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  failed = true;
  console.log(`web: FAILED: ${e.stack || e}`);
  if (fs.existsSync(serverLog)) {
    const log = fs.readFileSync(serverLog, 'utf8').split('\n').slice(-40).join('\n');
    console.log(`--- last lines of the server log (${serverLog}) ---\n${log}`);
  }
} finally {
  clearTimeout(overall);
  await cleanUp();
}
process.exit(failed ? 1 : 0);
