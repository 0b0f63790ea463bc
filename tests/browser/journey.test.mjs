// The practice and the patient, in a real browser: first staff sign-in (password
// change, TOTP enrolment), folder upload, grant, letter download; then the patient on
// a phone with the QR link. Screenshots go to $SHOTS_DIR for a person to look at.
//
// Needs: LICHTKASTEN_BIN (the built binary), Chromium at /usr/bin/chromium (see support.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bin, shots, startDemo, launchBrowser, totp, waitForViewerImages } from './support.mjs';

let running;
let demo;
let browser;

before(async () => {
  running = await startDemo();
  demo = running.demo;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  running?.stop();
});

test('staff: first sign-in, folder upload, grant and letter', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'de-DE', acceptDownloads: true });
  const page = await ctx.newPage();
  const offOrigin = [];
  page.on('request', (r) => { if (!r.url().startsWith(demo.base_url)) offOrigin.push(r.url()); });
  await page.goto(`${demo.base_url}/login`);
  await page.fill('#username', demo.staff_username);
  await page.fill('#password', demo.staff_password);
  await page.click('button[type=submit]');
  await page.fill('#new_password', 'Blauer-Kaffee-Tisch-47');
  await page.fill('#repeat_password', 'Blauer-Kaffee-Tisch-47');
  await page.click('button[type=submit]');
  await page.waitForSelector('.qr svg');
  await page.screenshot({ path: join(shots, 'staff-1-enrol.png') });
  await page.fill('#totp', totp(demo.totp_secret));
  await page.click('button[type=submit]');
  await page.waitForURL('**/practice/terms');
  await page.click('main button[type=submit]');
  await page.waitForURL('**/practice');
  await page.screenshot({ path: join(shots, 'staff-2-list.png') });

  // A folder of DICOM files made by the binary itself.
  const folder = mkdtempSync(join(tmpdir(), 'lk-upload-'));
  execFileSync(bin, ['synth', '--out', folder, '--slices', '5', '--size', '64'], { stdio: 'ignore' });
  await page.goto(`${demo.base_url}/practice/upload`);
  await page.setInputFiles('#folder', folder);
  try {
    await page.waitForFunction(() => document.querySelectorAll('#results li.accepted').length === 6, null, { timeout: 30000 });
  } finally {
    await page.screenshot({ path: join(shots, 'staff-3-upload.png') });
  }
  await page.screenshot({ path: join(shots, 'staff-3-upload.png') });

  await page.goto(`${demo.base_url}/practice`);
  const rows = await page.locator('table tbody tr').count();
  assert.equal(rows, 2, 'demo study and the uploaded one');
  await page.locator('table tbody a').first().click();
  await page.waitForSelector('.thumbs img');
  await page.click('form.inline button[type=submit]');
  await page.waitForSelector('.issued');
  const code = await page.locator('.issued code').first().textContent();
  assert.match(code, /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
  await page.screenshot({ path: join(shots, 'staff-4-grant.png'), fullPage: true });
  const href = await page.locator('.issued a').first().getAttribute('href');
  const res = await page.request.get(`${demo.base_url}${href}`);
  assert.equal(res.status(), 200);
  assert.equal(res.headers()['content-type'], 'application/pdf');
  assert.equal((await res.body()).subarray(0, 5).toString(), '%PDF-');
  assert.deepEqual(offOrigin, [], 'no request leaves the origin');
  await ctx.close();
});

test('patient: QR link and password on a phone', async () => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2, locale: 'de-DE' });
  const page = await ctx.newPage();
  await page.goto(demo.patient_link);
  assert.ok(page.url().endsWith('/s'), 'the link token left the address bar before the password');
  await page.screenshot({ path: join(shots, 'patient-1-password.png') });
  await page.fill('#password', demo.password);
  await page.click('button[type=submit]');
  await page.waitForURL('**/view');
  assert.ok(!page.url().includes('/s/'), 'the link token left the address bar');
  await waitForViewerImages(page, 2);
  await page.screenshot({ path: join(shots, 'patient-2-viewer.png') });
  // Nothing but the per-tab nonce is kept in the browser.
  const storage = await page.evaluate(() => ({ local: localStorage.length, session: Object.keys(sessionStorage) }));
  assert.deepEqual(storage, { local: 0, session: ['lk-tab'] });
  // A reload keeps the session.
  await page.reload();
  await waitForViewerImages(page, 1);
  assert.ok(page.url().endsWith('/view'));
  // Closing the tab ends it within seconds, even for the same cookies elsewhere.
  const cookies = await ctx.cookies();
  const second = await ctx.newPage();
  await page.close({ runBeforeUnload: true });
  await new Promise((r) => setTimeout(r, 12000));
  const other = await browser.newContext({ viewport: { width: 390, height: 844 } });
  await other.addCookies(cookies);
  const replay = await other.newPage();
  await replay.goto(`${demo.base_url}/view`);
  assert.ok(replay.url().includes('/access'), 'a closed tab\'s session is over');
  await other.close();
  await second.close();
  // Sign in again for the logout check.
  const again = await ctx.newPage();
  await again.goto(demo.patient_link);
  await again.fill('#password', demo.password);
  await again.click('button[type=submit]');
  await again.waitForURL('**/view');
  await logoutCheck(again);
  await ctx.close();
});

async function logoutCheck(page) {
  await page.click('text=Abmelden');
  await page.waitForURL('**/access');
  await page.goBack();
  assert.ok(!(await page.content()).includes('Müller'), 'back after logout shows no patient data');
}
