// The interactive image viewer on a phone (touch, through real touch events) and on a
// desktop (mouse, wheel, keyboard): first image, scrolling, pinch zoom, window,
// cine, invert and rotate, measuring, comparison, and patient text shown as text.
// Screenshots go to $SHOTS_DIR for a person to look at.
//
// Needs: LICHTKASTEN_BIN (the built binary), Chromium at /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  shots, PHONE, startDemo, launchBrowser, signInByLink, waitForViewerImages,
  canvasStats, gridDiff, apiToken, uploadSynthStudy,
} from './support.mjs';

const DESKTOP = { viewport: { width: 1280, height: 800 }, locale: 'de-DE' };

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

async function open(options, { link = demo.patient_link, password = demo.password } = {}) {
  const ctx = await browser.newContext(options);
  const page = await ctx.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await signInByLink(page, link, password);
  await waitForViewerImages(page, 1);
  return { ctx, page, requests };
}

const pane = (page, i = 0) => page.locator('#image-viewer .iv-pane').nth(i);
const data = (page, key, i = 0) => pane(page, i).evaluate((el, k) => el.dataset[k], key);
const index = async (page, i = 0) => Number(await data(page, 'index', i));

async function paneBox(page, i = 0) {
  return pane(page, i).boundingBox();
}

/** One or more fingers moving in a straight line, as real touch events (CDP). */
async function touchDrag(page, from, to, steps = 10) {
  const cdp = await page.context().newCDPSession(page);
  const pts = (ps) => ps.map((p, id) => ({ x: p.x, y: p.y, id, radiusX: 4, radiusY: 4, force: 1 }));
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: pts(from) });
  for (let s = 1; s <= steps; s++) {
    const at = from.map((a, k) => ({ x: a.x + ((to[k].x - a.x) * s) / steps, y: a.y + ((to[k].y - a.y) * s) / steps }));
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: pts(at) });
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await cdp.detach();
}

// Two animation frames: what the last input asked for is on the canvas.
const painted = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

test('phone: first image at once, fitted and not blank, from the page\'s own image', async () => {
  const { ctx, page, requests } = await open(PHONE);
  try {
    const stats = await canvasStats(page);
    assert.ok(stats.variance > 100, `first image has content (variance ${stats.variance.toFixed(1)})`);
    assert.equal(await data(page, 'index'), '1');
    assert.equal(await data(page, 'total'), '12');
    // The server put the first image in the page: inside it once its preview is in
    // the render cache (the demo's is prepared by now), else as a link. Either way
    // the viewer takes it over and does not fetch it again.
    const first = await page.locator('#first-image').getAttribute('src');
    const firstId = await page.locator('#first-image').getAttribute('data-instance');
    await waitForViewerImages(page, 12);
    const previewUrl = new URL(`/view/api/instances/${firstId}/frames/1/rendered?viewport=768,768&format=jpeg`, demo.base_url).href;
    const inline = first.startsWith('data:image/jpeg;base64,');
    if (!inline) assert.equal(new URL(first, demo.base_url).href, previewUrl);
    assert.equal(requests.filter((u) => u === previewUrl).length, inline ? 0 : 1, 'first image fetched at most once');
    assert.ok(requests.some((u) => u.includes('/view/api/instances/')), 'the rest is fetched');
    // Big enough to hit with a thumb.
    const small = await page.evaluate(() => [...document.querySelectorAll('#image-viewer button, #image-viewer a, #image-viewer select')]
      .filter((b) => b.offsetParent && (b.offsetWidth < 44 || b.offsetHeight < 44)).map((b) => b.getAttribute('aria-label')));
    assert.deepEqual(small, [], 'every control at least 44 px');
    const unlabeled = await page.evaluate(() => [...document.querySelectorAll('#image-viewer button')]
      .filter((b) => !b.getAttribute('aria-label')).length);
    assert.equal(unlabeled, 0, 'every button has an aria-label');
    assert.equal(await page.locator('#image-viewer .iv-pane').evaluate((e) => getComputedStyle(e).touchAction), 'none');
    assert.match(await pane(page).locator('.iv-tl').textContent(), /Müller/);
    assert.equal((await pane(page).locator('.iv-o-top').textContent()).trim(), 'A');
    assert.equal((await pane(page).locator('.iv-o-right').textContent()).trim(), 'L');
    await page.screenshot({ path: join(shots, 'viewer-phone.png') });
    await page.screenshot({ path: join(shots, 'viewer-phone-full.png'), fullPage: true });
  } finally {
    await ctx.close();
  }
});

test('phone: a swipe scrolls slices, a pinch zooms about its centre', async () => {
  const { ctx, page } = await open(PHONE);
  try {
    await waitForViewerImages(page, 12);
    const before = await canvasStats(page);
    const box = await paneBox(page);
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    // Swipe up: further into the stack.
    await touchDrag(page, [{ x: cx, y: cy + 100 }], [{ x: cx, y: cy - 60 }]);
    await painted(page);
    const moved = await index(page);
    assert.ok(moved > 1, `slice after swipe: ${moved}`);
    const after = await canvasStats(page);
    assert.ok(gridDiff(before, after) > 1, 'another slice is drawn');
    assert.match(await pane(page).locator('.iv-bl').textContent(), new RegExp(`Bild ${moved}/12`));

    // Pinch out around the centre: the scale grows, the slice stays.
    const z0 = Number(await data(page, 'zoom'));
    await touchDrag(page, [{ x: cx - 40, y: cy }, { x: cx + 40, y: cy }], [{ x: cx - 120, y: cy - 10 }, { x: cx + 120, y: cy + 10 }]);
    await painted(page);
    const z1 = Number(await data(page, 'zoom'));
    assert.ok(z1 > z0 * 2, `zoom ${z0} -> ${z1}`);
    assert.equal(await index(page), moved, 'a pinch does not scroll');
    const zoomed = await canvasStats(page);
    assert.ok(gridDiff(after, zoomed) > 1, 'the zoomed image differs');
    // Two fingers moving together pan without changing the scale.
    await touchDrag(page, [{ x: cx - 60, y: cy }, { x: cx + 60, y: cy }], [{ x: cx - 20, y: cy + 50 }, { x: cx + 100, y: cy + 50 }]);
    await painted(page);
    const z2 = Number(await data(page, 'zoom'));
    assert.ok(Math.abs(z2 - z1) / z1 < 0.02, `two-finger pan keeps the zoom (${z1} -> ${z2})`);
    await page.screenshot({ path: join(shots, 'viewer-phone-zoomed.png') });
  } finally {
    await ctx.close();
  }
});

test('phone: window drag changes pixels and C/W, then asks the server for that window', async () => {
  const { ctx, page } = await open(PHONE);
  try {
    await page.click('#image-viewer button[aria-label^="Werkzeug Fensterung"]');
    const box = await paneBox(page);
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    const before = await canvasStats(page);
    assert.match(await pane(page).locator('.iv-br').textContent(), /C 40\s+W 400/);
    const exact = page.waitForRequest((r) => /[?&]window=-?\d+,\d+/.test(r.url()), { timeout: 10000 });
    await touchDrag(page, [{ x: cx, y: cy }], [{ x: cx - 80, y: cy - 60 }]);
    const req = await exact;
    await painted(page);
    const after = await canvasStats(page);
    assert.ok(gridDiff(before, after) > 3, `window changes the pixels (${gridDiff(before, after).toFixed(2)})`);
    const cw = await pane(page).locator('.iv-br').textContent();
    assert.doesNotMatch(cw, /C 40\s+W 400/);
    const [c, w] = (await data(page, 'window')).split(',').map(Number);
    assert.ok(w < 400 && c < 40, `C ${c} W ${w}`);
    assert.ok(req.url().includes(`window=${c},${w}`), req.url());
    await page.waitForFunction(() => document.querySelector('#image-viewer .iv-pane').dataset.shown.includes('@'));
    await page.screenshot({ path: join(shots, 'viewer-phone-window.png') });
    // A preset and back to the stored window.
    await page.selectOption('#image-viewer select.iv-preset', 'lung');
    assert.equal(await data(page, 'window'), '-600,1500');
    await page.selectOption('#image-viewer select.iv-preset', '');
    assert.equal(await data(page, 'window'), '40,400');
  } finally {
    await ctx.close();
  }
});

test('phone: cine plays the ultrasound loop and stops on pause', async () => {
  const { ctx, page } = await open(PHONE);
  try {
    await page.click('#image-viewer .iv-thumb[aria-label*="Herz"]');
    await page.waitForFunction(() => document.getElementById('image-viewer').dataset.total === '24');
    await page.click('#image-viewer button[aria-label="Film abspielen"]');
    const seen = new Set();
    const t0 = Date.now();
    while (seen.size < 5 && Date.now() - t0 < 10000) {
      seen.add(await index(page));
      await new Promise((r) => setTimeout(r, 60));
    }
    assert.ok(seen.size >= 5, `frames while playing: ${[...seen].join(',')}`);
    assert.match(await pane(page).locator('.iv-bl').textContent(), /Einzelbild \d+\/24/);
    await page.screenshot({ path: join(shots, 'viewer-phone-cine.png') });
    await page.click('#image-viewer button[aria-label="Film anhalten"]');
    const stopped = await index(page);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await index(page), stopped, 'pause stops the loop');
    // An 8-bit loop without a window is shown as stored, and that is where
    // window/level starts.
    assert.match(await pane(page).locator('.iv-br').textContent(), /C 128\s+W 256/);
    assert.equal(await page.locator('#image-viewer select.iv-preset').isDisabled(), false);
  } finally {
    await ctx.close();
  }
});

test('desktop: wheel and keys scroll, invert and rotate change the picture', async () => {
  const { ctx, page } = await open(DESKTOP);
  try {
    await waitForViewerImages(page, 12);
    const box = await paneBox(page);
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const s1 = await canvasStats(page);
    await page.mouse.wheel(0, 100);
    await page.waitForFunction(() => document.querySelector('#image-viewer .iv-pane').dataset.index === '2');
    await painted(page);
    assert.ok(gridDiff(s1, await canvasStats(page)) > 1, 'wheel shows the next slice');

    await pane(page).focus();
    await page.keyboard.press('ArrowDown');
    assert.equal(await index(page), 3);
    await page.keyboard.press('End');
    assert.equal(await index(page), 12);
    await page.keyboard.press('Home');
    assert.equal(await index(page), 1);
    await page.keyboard.press('PageDown');
    assert.ok(await index(page) > 1);
    // The live region tells a screen reader where it is.
    await page.waitForFunction(() => /Bild \d+ von 12/.test(document.querySelector('#image-viewer [aria-live]').textContent));
    assert.match(await page.locator('#image-viewer canvas').first().getAttribute('aria-label'), /Bild \d+ von 12/);

    await painted(page);
    const plain = await canvasStats(page);
    await page.keyboard.press('i');
    await painted(page);
    const inverted = await canvasStats(page);
    // The mostly dark CT turns mostly light (the black margin around it stays black).
    assert.ok(inverted.mean > plain.mean + 30, `inverted mean ${inverted.mean.toFixed(1)} vs ${plain.mean.toFixed(1)}`);
    assert.ok(gridDiff(plain, inverted) > 20);
    await page.keyboard.press('i');
    await page.keyboard.press('r');
    await painted(page);
    const rotated = await canvasStats(page);
    assert.ok(gridDiff(plain, rotated) > 2, 'rotation changes the picture');
    // Axial slice rotated clockwise: anterior now to the right, patient's right on top.
    assert.equal((await pane(page).locator('.iv-o-right').textContent()).trim(), 'A');
    assert.equal((await pane(page).locator('.iv-o-top').textContent()).trim(), 'R');
    await page.keyboard.press('f');
    await painted(page);
    assert.equal((await pane(page).locator('.iv-o-right').textContent()).trim(), 'P');
    await page.screenshot({ path: join(shots, 'viewer-desktop-rotated.png') });
    await page.keyboard.press('0');
    await painted(page);
    assert.equal((await pane(page).locator('.iv-o-top').textContent()).trim(), 'A');
    // Tab leaves the image for the controls.
    await page.keyboard.press('Tab');
    assert.ok(await page.evaluate(() => !!document.activeElement.closest('#image-viewer') && document.activeElement.matches('button, input, select, a')));
  } finally {
    await ctx.close();
  }
});

test('desktop: measuring a line gives millimetres from the pixel spacing', async () => {
  const { ctx, page } = await open(DESKTOP);
  try {
    const spacing = await page.evaluate(() => JSON.parse(document.getElementById('study-manifest').textContent)
      .study.series[0].instances[0].view.pixel_spacing);
    assert.ok(spacing, 'the demo CT has a pixel spacing');
    await page.keyboard.press('Tab'); // focus moves into the page; shortcuts below use the button
    await page.click('#image-viewer button[aria-label^="Werkzeug Messen"]');
    const box = await paneBox(page);
    // 256 image pixels fitted into the pane: screen position of an image pixel.
    const scale = Math.min(box.width, box.height) / 256;
    const at = (px, py) => ({ x: box.x + box.width / 2 + (px - 128) * scale, y: box.y + box.height / 2 + (py - 128) * scale });
    const a = at(48, 100);
    const b = at(208, 100);
    await page.mouse.move(a.x, a.y);
    await page.mouse.down();
    await page.mouse.move(b.x, b.y, { steps: 8 });
    await page.mouse.up();
    await painted(page);
    const text = await pane(page).locator('.iv-br').textContent();
    const mm = Number(/Strecke ([\d.,]+) mm/.exec(text)[1].replace(',', '.'));
    const want = 160 * spacing[1];
    assert.ok(Math.abs(mm - want) / want < 0.015, `measured ${mm} mm, expected ${want}`);
    assert.match(text, /Strecke \d+,\d mm/, 'one decimal, German comma');
    await page.screenshot({ path: join(shots, 'viewer-desktop-measure.png') });
    // The key image has no spacing: a clear message instead of a line.
    const keySeries = await page.evaluate(() => JSON.parse(document.getElementById('study-manifest').textContent)
      .study.series.filter((s) => s.instances.some((i) => i.rows > 0))
      .findIndex((s) => s.instances.length === 1 && s.instances[0].frames <= 1));
    assert.ok(keySeries >= 0, 'the demo has a single key image');
    await page.click(`#image-viewer .iv-thumb >> nth=${keySeries}`);
    await page.waitForFunction(() => document.getElementById('image-viewer').dataset.total === '1');
    const pb = await paneBox(page);
    await page.mouse.move(pb.x + pb.width / 2, pb.y + pb.height / 2);
    await page.mouse.down();
    await page.mouse.move(pb.x + pb.width / 2 + 100, pb.y + pb.height / 2, { steps: 4 });
    await page.mouse.up();
    await painted(page);
    const spacingKnown = await page.evaluate((keySeries) => JSON.parse(document.getElementById('study-manifest').textContent)
      .study.series.filter((s) => s.instances.some((i) => i.rows > 0))[keySeries].instances[0].view.pixel_spacing, keySeries);
    if (!spacingKnown) {
      assert.match(await pane(page).locator('.iv-msg').textContent(), /kein Maßstab/);
    }
  } finally {
    await ctx.close();
  }
});

test('desktop: two series side by side scroll together', async () => {
  const { ctx, page } = await open(DESKTOP);
  try {
    await page.click('#image-viewer button[aria-label="Zwei Serien nebeneinander vergleichen"]');
    assert.equal(await page.locator('#image-viewer .iv-pane').count(), 2);
    await page.waitForFunction(() => [...document.querySelectorAll('#image-viewer .iv-pane')].every((p) => p.dataset.shown));
    const left = await pane(page, 0).boundingBox();
    const right = await pane(page, 1).boundingBox();
    assert.ok(right.x >= left.x + left.width - 1, 'side by side');
    // Same series twice in the demo (one CT): synchronised by position.
    await pane(page, 0).focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    assert.equal(await index(page, 0), 3);
    assert.equal(await index(page, 1), await index(page, 0), 'the other pane follows');
    await page.screenshot({ path: join(shots, 'viewer-desktop-compare.png') });
  } finally {
    await ctx.close();
  }
});

test('patient text with markup is shown as text, never run', async () => {
  const name = '<img src=x onerror=alert(1)>^Test';
  const token = await apiToken(demo);
  const { grant } = await uploadSynthStudy(demo, token, { slices: 3, size: 64, patientName: name });
  const ctx = await browser.newContext(PHONE);
  try {
    const page = await ctx.newPage();
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
    await signInByLink(page, grant.link, grant.password);
    await waitForViewerImages(page, 1);
    await new Promise((r) => setTimeout(r, 500));
    // DICOM splits a PersonName at "=" (alphabetic=ideographic=phonetic), so the
    // server shows the part before it: still markup, which must appear as text.
    const shown = await page.evaluate(() => JSON.parse(document.getElementById('study-manifest').textContent).display.patient_name);
    assert.ok(shown.includes('<img'), `display name: ${shown}`);
    const overlay = await pane(page).locator('.iv-tl').textContent();
    assert.ok(overlay.includes(shown), `overlay: ${overlay}`);
    assert.ok((await page.locator('header.bar strong').textContent()).includes(shown));
    assert.equal(await page.locator('#image-viewer .iv-overlay img').count(), 0);
    assert.equal(await page.locator('img[src="x"]').count(), 0, 'no injected element');
    assert.deepEqual(dialogs, []);
    await page.screenshot({ path: join(shots, 'viewer-phone-markup-name.png') });
  } finally {
    await ctx.close();
  }
});
