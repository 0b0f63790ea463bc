// The patient's side on a phone: signing in with code or link, what ends a session
// (closed tab, idleness, logout, revocation), what the browser keeps afterwards, the
// findings and the downloads. Screenshots go to $SHOTS_DIR for a person to look at.
//
// Needs: LICHTKASTEN_BIN (the built binary), Chromium at /usr/bin/chromium, and for
// the download test dcmdump (dcmtk) and unzip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  shots, PHONE, DEMO_SURNAME, startDemo, launchBrowser, signInByLink,
  waitForViewerImages, pageFetchStatus, apiToken, api,
} from './support.mjs';

let running;
let demo;
let browser;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  running = await startDemo();
  demo = running.demo;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  running?.stop();
});

test('code and password: the code in any spelling opens the viewer', async () => {
  const ctx = await browser.newContext(PHONE);
  try {
    const page = await ctx.newPage();
    await page.goto(`${demo.base_url}/access`);
    await page.screenshot({ path: join(shots, 'patient-access-phone.png') });
    // People type what they read off the letter: lower case, without the dashes.
    await page.fill('#access_code', demo.access_code.toLowerCase().replaceAll('-', ''));
    await page.fill('#password', demo.password);
    await page.click('button[type=submit]');
    await page.waitForURL('**/view');
    await waitForViewerImages(page, 1);
    // A drawn image can still be a blank square; the rendering must have content.
    const colours = await page.evaluate(() => {
      const canvas = document.querySelector('#image-viewer .iv-canvas');
      const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      const seen = new Set();
      for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return seen.size;
    });
    assert.ok(colours > 1, `first image has ${colours} colour(s)`);
  } finally {
    await ctx.close();
  }
});

test('closed tab: its cookies and tab nonce replayed elsewhere are refused', async () => {
  const ctx = await browser.newContext(PHONE);
  const other = await browser.newContext(PHONE);
  try {
    const page = await ctx.newPage();
    await signInByLink(page, demo.patient_link, demo.password);
    await waitForViewerImages(page);
    const cookies = await ctx.cookies();
    const stored = await page.evaluate(() =>
      JSON.stringify(Object.fromEntries(Object.keys(sessionStorage).map((k) => [k, sessionStorage.getItem(k)]))));
    // The browser stays open (another tab), only the viewer's tab is closed.
    const keep = await ctx.newPage();
    await page.close({ runBeforeUnload: true });
    await sleep(12000);
    await other.addCookies(cookies);
    // The full tab state, nonce included, as a restored or copied tab would have it.
    await other.addInitScript((snapshot) => {
      try {
        for (const [k, v] of Object.entries(JSON.parse(snapshot))) sessionStorage.setItem(k, v);
      } catch { /* about:blank has no storage */ }
    }, stored);
    const replay = await other.newPage();
    await replay.goto(`${demo.base_url}/view`);
    assert.equal(new URL(replay.url()).pathname, '/access', 'a closed tab\'s session is over');
    assert.equal(await pageFetchStatus(replay, '/view/api/study'), 401);
    assert.ok(!(await replay.content()).includes(DEMO_SURNAME));
    await keep.close();
  } finally {
    await other.close();
    await ctx.close();
  }
});

test('idle: warning a minute before the end, "stay" keeps it, then it ends', async () => {
  // Its own server: the offset file moves this server's clock only.
  const offsetFile = join(mkdtempSync(join(tmpdir(), 'lk-clock-')), 'offset');
  writeFileSync(offsetFile, '0');
  const own = await startDemo({ env: { LICHTKASTEN_CLOCK_OFFSET_FILE: offsetFile } });
  const ctx = await browser.newContext(PHONE);
  try {
    const page = await ctx.newPage();
    // Before the first page loads, so the viewer's heartbeat timer is a fake one.
    await page.clock.install();
    await signInByLink(page, own.demo.patient_link, own.demo.password);
    // Idle time counts from here on the server, in real seconds plus the offset.
    let offset = 0;
    let ref = { offset: 0, at: Date.now() };
    const idleNow = () => (offset - ref.offset) + (Date.now() - ref.at) / 1000;
    await waitForViewerImages(page);
    const warning = page.locator('#idle-warning');
    assert.equal(await warning.isVisible(), false, 'no warning right after sign-in');

    // Moves the server clock until the person has been idle `target` seconds (the
    // real seconds the test itself takes count too, so a slow machine cannot push
    // the session past its end) and lets a heartbeat run after each step. The clock
    // moves in 120 s steps under the server's 180 s liveness window, as in real life; one
    // big jump would end the session as "tab gone" before idleness is looked at.
    const beats = [];
    async function idleTo(target) {
      while (idleNow() < target - 1) {
        offset = Math.round(offset + Math.min(120, target - idleNow()));
        writeFileSync(offsetFile, String(offset));
        const beat = page.waitForResponse((r) => r.url().endsWith('/view/api/heartbeat'), { timeout: 15000 });
        await page.clock.runFor(61_000);
        const res = await beat;
        beats.push({ offset, status: res.status(), active: res.request().headers()['x-active'] });
        if (res.status() !== 200) return `beat at offset ${offset} answered ${res.status()}; beats ${JSON.stringify(beats)}`;
      }
      return null;
    }

    assert.equal(await idleTo(14 * 60 + 5), null, 'session alive up to the warning');
    await warning.waitFor({ state: 'visible' });
    assert.equal(await page.locator('#idle-warning button#stay').count(), 1);
    await page.screenshot({ path: join(shots, 'patient-idle-warning.png') });
    // Nobody touched the page, so no beat may claim the person was active.
    assert.ok(beats.every((b) => b.active !== '1'), `idle beats: ${JSON.stringify(beats)}`);

    // "Stay" is input: it sends an active beat at once and the warning goes.
    const stayBeat = page.waitForResponse((r) => r.url().endsWith('/view/api/heartbeat'));
    ref = { offset, at: Date.now() };
    await page.click('#stay');
    const stayed = await stayBeat;
    assert.equal(stayed.status(), 200);
    assert.equal(stayed.request().headers()['x-active'], '1');
    await warning.waitFor({ state: 'hidden' });

    // The idle clock now restarts at the server's time of the click.
    const base = ref.offset;
    assert.equal(await idleTo(12 * 60), null, 'stay gave a fresh 15 minutes');
    assert.equal(await warning.isVisible(), false, 'no warning two minutes before the end');
    assert.equal(await idleTo(14 * 60 + 5), null);
    await warning.waitFor({ state: 'visible' });

    // Past the idle end: the next beat is refused and the page leaves the study.
    writeFileSync(offsetFile, String(base + 15 * 60 + 30));
    await page.clock.runFor(61_000);
    await page.waitForURL((u) => u.pathname === '/access' && u.searchParams.get('ended') === '1');
    await page.locator('p.notice').waitFor();
    assert.ok(!(await page.content()).includes(DEMO_SURNAME));
    assert.equal(await pageFetchStatus(page, '/view/api/study'), 401);
  } finally {
    await ctx.close();
    own.stop();
  }
});

test('logout: back shows nothing and the API refuses', async () => {
  const ctx = await browser.newContext(PHONE);
  try {
    const page = await ctx.newPage();
    await signInByLink(page, demo.patient_link, demo.password);
    await waitForViewerImages(page, 1);
    await page.click('text=Abmelden');
    await page.waitForURL('**/access');
    await page.goBack();
    assert.ok(!(await page.content()).includes(DEMO_SURNAME), 'back after logout shows no patient data');
    assert.equal(await pageFetchStatus(page, '/view/api/study'), 401);
  } finally {
    await ctx.close();
  }
});

test('revocation through the API ends an open viewer', async () => {
  // A second grant of the demo study, so the demo grant stays usable for the others.
  const token = await apiToken(demo);
  const issued = await api(demo, token, 'POST', `/api/v1/studies/${demo.study_id}/grants`);
  assert.equal(issued.status, 201, issued.text);
  const ctx = await browser.newContext(PHONE);
  try {
    const page = await ctx.newPage();
    await signInByLink(page, issued.json.link, issued.json.password);
    await waitForViewerImages(page, 1);
    assert.equal(await pageFetchStatus(page, '/view/api/study'), 200);
    const revoked = await api(demo, token, 'DELETE', `/api/v1/grants/${issued.json.id}`);
    assert.equal(revoked.status, 204, revoked.text);
    assert.equal(await pageFetchStatus(page, '/view/api/study'), 401);
    await page.reload();
    assert.equal(new URL(page.url()).pathname, '/access');
    assert.ok(!(await page.content()).includes(DEMO_SURNAME));
  } finally {
    await ctx.close();
  }
});

test('hygiene: one origin, no-store, nothing left in the browser', async (t) => {
  const origin = new URL(demo.base_url).origin;
  const ctx = await browser.newContext(PHONE);
  try {
    const page = await ctx.newPage();
    const offOrigin = [];
    const responses = [];
    let afterPassword = false;
    page.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin) offOrigin.push(u);
      if (r.method() === 'POST' && new URL(u).pathname === '/s') afterPassword = true;
    });
    page.on('response', (r) => { if (afterPassword) responses.push(r); });

    await signInByLink(page, demo.patient_link, demo.password);
    await waitForViewerImages(page);
    const findingsText = page.locator('details.findings-text');
    if (await findingsText.count()) {
      await findingsText.first().locator('summary').click();
    } else {
      t.diagnostic('no findings section in this build: the journey skips opening it');
    }
    // Every image, as a patient going through all of them would load them: each
    // series in the viewer until its whole stack is in memory, then the page's other
    // images. Not 'networkidle': a heartbeat whose body the page never reads stays
    // "pending".
    const seriesCount = await page.locator('#image-viewer .iv-thumb').count();
    assert.ok(seriesCount > 0, 'the viewer lists the series');
    for (let i = 0; i < seriesCount; i++) {
      await page.locator('#image-viewer .iv-thumb').nth(i).click();
      await page.waitForFunction(() => {
        const r = document.getElementById('image-viewer');
        return r.dataset.total && r.dataset.loaded === r.dataset.total;
      });
    }
    await page.evaluate(() => {
      for (const img of document.images) img.loading = 'eager';
      window.scrollTo(0, document.body.scrollHeight);
    });
    await page.waitForFunction(() => [...document.images].every((i) => i.hidden || (i.complete && i.naturalWidth > 0)));

    const storage = await page.evaluate(async () => ({
      local: localStorage.length,
      indexedDB: (await indexedDB.databases()).length,
      caches: (await caches.keys()).length,
      session: Object.keys(sessionStorage),
    }));
    assert.deepEqual(storage, { local: 0, indexedDB: 0, caches: 0, session: ['lk-tab'] });

    await page.click('text=Abmelden');
    await page.waitForURL('**/access');
    await page.waitForLoadState('load');
    await sleep(500); // the viewer's goodbye beacon

    assert.deepEqual(offOrigin, [], 'no request leaves the origin');
    assert.ok(responses.length > 5, `saw ${responses.length} responses`);
    const missing = [];
    for (const r of responses) {
      const u = new URL(r.url());
      if (u.protocol === 'data:' || u.protocol === 'blob:') continue;
      const cc = (await r.allHeaders())['cache-control'] || '';
      if (!cc.includes('no-store')) missing.push(`${r.status()} ${u.pathname}: ${cc || '(none)'}`);
    }
    assert.deepEqual(missing, [], 'every response after the password is no-store, static files too');
  } finally {
    await ctx.close();
  }
});

test('findings: rendered pages, a text version and the PDF', async () => {
  const ctx = await browser.newContext(PHONE);
  try {
    const page = await ctx.newPage();
    await signInByLink(page, demo.patient_link, demo.password);
    const section = page.locator('section.findings');
    await section.waitFor({ timeout: 5000 });
    const pages = section.locator('img.findings-page');
    const count = await pages.count();
    assert.ok(count >= 1, 'at least one rendered findings page');
    for (let i = 0; i < count; i++) {
      const img = pages.nth(i);
      // The agreed URL form: the file type shows in the name.
      assert.match(await img.getAttribute('src'), /^\/view\/api\/findings\/[0-9a-z]+\/pages\/\d+$/, 'a findings page drawn by the server');
      await img.scrollIntoViewIfNeeded();
      await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
    }
    // The text version is for screen readers and zooming; the summary alone ("Befund
    // als Text") would say "Befund" too, so only the body counts.
    const text = await page.locator('details.findings-text').first().evaluate((d) => {
      const copy = d.cloneNode(true);
      copy.querySelector('summary')?.remove();
      return copy.textContent;
    });
    assert.ok(text.includes('Befund'), `findings text: ${text.slice(0, 200)}`);
    const download = page.locator('a.findings-download');
    assert.ok(await download.count() >= 1, 'a link to the original PDF');
    const pdf = await page.evaluate(async (href) => {
      const r = await fetch(href);
      const head = new Uint8Array(await r.arrayBuffer()).slice(0, 5);
      return { status: r.status, type: r.headers.get('content-type'), head: String.fromCharCode(...head) };
    }, await download.first().getAttribute('href'));
    assert.deepEqual(pdf, { status: 200, type: 'application/pdf', head: '%PDF-' });
    await section.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, 'patient-viewer-findings.png') });
    await page.screenshot({ path: join(shots, 'patient-viewer-findings-full.png'), fullPage: true });
  } finally {
    await ctx.close();
  }
});

function filesUnder(root) {
  const out = [];
  for (const e of readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(root, join(e.parentPath ?? e.path, e.name)).split(sep).join('/'));
  }
  return out.sort();
}

test('downloads: the study as a CD-like ZIP and single images as JPEG', async () => {
  for (const tool of ['/usr/bin/dcmdump', '/usr/bin/unzip']) assert.ok(existsSync(tool), `${tool} (apt-get install dcmtk unzip)`);
  const ctx = await browser.newContext({ ...PHONE, acceptDownloads: true });
  try {
    const page = await ctx.newPage();
    await signInByLink(page, demo.patient_link, demo.password);
    await waitForViewerImages(page, 1);
    const hasFindings = (await page.locator('section.findings').count()) > 0;

    const link = page.locator('a#download-study');
    assert.equal(await link.getAttribute('href', { timeout: 5000 }), '/view/download/study.zip');
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const dir = mkdtempSync(join(tmpdir(), 'lk-zip-'));
    const zip = join(dir, 'study.zip');
    await download.saveAs(zip);
    const root = join(dir, 'cd');
    execFileSync('unzip', ['-q', zip, '-d', root]);
    const files = filesUnder(root);

    const dicom = files.filter((f) => f.startsWith('DICOM/'));
    assert.ok(dicom.length > 0, `DICOM files in ${files.join(', ')}`);
    for (const f of dicom) {
      try {
        execFileSync('dcmdump', ['-q', join(root, f)], { stdio: 'ignore' });
      } catch {
        assert.fail(`dcmdump rejects ${f}`);
      }
    }

    // DICOMDIR must index exactly the files on the "CD"; its paths use backslashes
    // and may differ in case from what unzip produced.
    assert.ok(files.includes('DICOMDIR'), 'DICOMDIR at the top');
    const dump = execFileSync('dcmdump', ['+P', '0004,1500', join(root, 'DICOMDIR')], { encoding: 'utf8' });
    const referenced = [...dump.matchAll(/\(0004,1500\)\s+CS\s+\[([^\]]*)\]/g)]
      .map((m) => m[1].replaceAll('\\', '/').toUpperCase()).sort();
    assert.deepEqual(referenced, dicom.map((f) => f.toUpperCase()).sort());

    assert.ok(files.includes('README.TXT'), 'README.TXT');
    assert.ok(files.includes('INDEX.HTM'), 'INDEX.HTM');
    if (hasFindings) assert.ok(files.some((f) => f.toLowerCase().endsWith('.pdf')), 'the findings PDF');

    // The CD's own page must work offline from the unpacked folder.
    const local = await browser.newContext();
    try {
      const index = await local.newPage();
      await index.goto(pathToFileURL(join(root, 'INDEX.HTM')).href);
      const imgCount = await index.evaluate(() => {
        // Lazy images would wait for a scroll that never comes.
        for (const img of document.images) img.loading = 'eager';
        return document.images.length;
      });
      assert.ok(imgCount > 0, 'INDEX.HTM shows images');
      await index.waitForFunction(() => [...document.images].every((i) => i.complete));
      const broken = await index.evaluate(() =>
        [...document.images].filter((i) => i.naturalWidth === 0).map((i) => i.getAttribute('src')));
      assert.deepEqual(broken, [], 'every image of INDEX.HTM loads');
      await index.screenshot({ path: join(shots, 'patient-cd-index.png') });
    } finally {
      await local.close();
    }

    // A JPEG link for every image of the study: the viewer's download button follows
    // the image on screen, so walk through every series and slice with the keyboard.
    const manifest = await page.evaluate(() => JSON.parse(document.getElementById('study-manifest').textContent));
    const images = manifest.study.series.flatMap((s) => s.instances).filter((i) => i.rows > 0)
      .reduce((n, i) => n + Math.max(1, i.frames), 0);
    const hrefs = new Set();
    const thumbs = page.locator('#image-viewer .iv-thumb');
    for (let i = 0; i < await thumbs.count(); i++) {
      await thumbs.nth(i).click();
      await page.locator('#image-viewer .iv-pane').focus();
      await page.keyboard.press('Home');
      const total = Number(await page.locator('#image-viewer .iv-pane').getAttribute('data-total'));
      for (let k = 0; k < total; k++) {
        hrefs.add(await page.locator('#image-viewer a.download-image').getAttribute('href'));
        await page.keyboard.press('ArrowDown');
      }
    }
    assert.equal(hrefs.size, images, 'one JPEG per image');
    const list = [...hrefs];
    assert.ok(list.every((h) => /^\/view\/api\/instances\/[0-9a-z]+\/frames\/\d+\/download$/.test(h)), `JPEG links: ${list.slice(0, 3).join(', ')}`);
    const jpeg = await page.evaluate(async (href) => {
      const r = await fetch(href);
      return { status: r.status, type: r.headers.get('content-type') };
    }, list[0]);
    assert.deepEqual(jpeg, { status: 200, type: 'image/jpeg' });
  } finally {
    await ctx.close();
  }
});
