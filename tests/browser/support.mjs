// Shared by the browser tests and the measurement script: a demo server of the built
// binary, Debian's Chromium, TOTP codes and the few steps every patient test repeats.
//
// Needs: LICHTKASTEN_BIN (the built binary), Chromium at /usr/bin/chromium.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const bin = process.env.LICHTKASTEN_BIN;

// One directory per run, so a person can look at the pictures afterwards.
export const shots = process.env.SHOTS_DIR || mkdtempSync(join(tmpdir(), 'lk-shots-'));
mkdirSync(shots, { recursive: true });

// The patient's phone. Scale factor 3 is what current phones report; German, as most
// patients of a German practice read it.
export const PHONE = {
  viewport: { width: 390, height: 844 },
  isMobile: true,
  hasTouch: true,
  deviceScaleFactor: 3,
  locale: 'de-DE',
};

// The demo patient's surname, for "is patient data still on screen" checks.
export const DEMO_SURNAME = 'Müller';

/**
 * Starts `lichtkasten demo` on a free port with its own data directory and returns the
 * JSON line it prints (base_url, patient_link, access_code, ...) and a stop function.
 * Database and S3 settings of the caller's shell are cleared so the demo stays local.
 */
export async function startDemo({ env = {} } = {}) {
  assert.ok(bin, 'set LICHTKASTEN_BIN to the lichtkasten binary');
  const dir = mkdtempSync(join(tmpdir(), 'lk-browser-'));
  const server = spawn(bin, ['demo', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data')], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, LICHTKASTEN_DATABASE_URL: '', LICHTKASTEN_S3_BUCKET: '', ...env },
  });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: server.stdout }).once('line', resolve);
    server.once('exit', (code) => reject(new Error(`demo exited with ${code}`)));
  });
  const demo = JSON.parse(line);
  return { demo, server, dir, stop: () => server.kill() };
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, buf = 0;
  const out = [];
  for (const c of s) {
    buf = (buf << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) { bits -= 8; out.push((buf >> bits) & 255); }
  }
  return Buffer.from(out);
}

// RFC 6238, computed here from the enrolment secret.
export function totp(secret) {
  const step = Buffer.alloc(8);
  step.writeBigInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const h = createHmac('sha1', base32(secret)).update(step).digest();
  const o = h[19] & 15;
  const n = (((h[o] & 127) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3]) % 1000000;
  return String(n).padStart(6, '0');
}

/** The QR-code path: link, then the password on /s, ending on the viewer. */
export async function signInByLink(page, link, password) {
  await page.goto(link);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
  await page.waitForURL('**/view');
}

/**
 * Waits until the image viewer has drawn its first image and holds at least `count`
 * images of the shown series in memory (it loads the rest in the background).
 */
export async function waitForViewerImages(page, count = 2) {
  await page.waitForFunction((n) => {
    const root = document.getElementById('image-viewer');
    const pane = root?.querySelector('.iv-pane');
    if (!pane?.dataset.shown) return false;
    const total = Number(root.dataset.total || 0);
    return Number(root.dataset.loaded || 0) >= Math.min(n, total);
  }, count);
}

/** Grey-level statistics of a viewer pane's canvas, and a coarse grid for comparisons. */
export function canvasStats(page, pane = 0) {
  return page.evaluate((i) => {
    const c = document.querySelectorAll('#image-viewer .iv-canvas')[i];
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let sum = 0, sq = 0, n = 0;
    for (let p = 0; p < d.length; p += 16) {
      const g = (d[p] + d[p + 1] + d[p + 2]) / 3;
      sum += g; sq += g * g; n++;
    }
    const grid = [];
    const G = 32;
    for (let y = 0; y < G; y++) {
      for (let x = 0; x < G; x++) {
        const px = Math.floor(((x + 0.5) / G) * c.width);
        const py = Math.floor(((y + 0.5) / G) * c.height);
        const o = (py * c.width + px) * 4;
        grid.push(Math.round((d[o] + d[o + 1] + d[o + 2]) / 3));
      }
    }
    const mean = sum / n;
    return { mean, variance: sq / n - mean * mean, grid };
  }, pane);
}

/** Mean absolute difference of two canvasStats grids (0 = identical). */
export function gridDiff(a, b) {
  let s = 0;
  for (let i = 0; i < a.grid.length; i++) s += Math.abs(a.grid[i] - b.grid[i]);
  return s / a.grid.length;
}

/**
 * A generated study (`lichtkasten synth`) uploaded through the API as one
 * multipart/form-data request, with a fresh grant: { studyId, grant }.
 */
export async function uploadSynthStudy(demo, token, { slices = 5, size = 64, patientName } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'lk-synth-'));
  const args = ['synth', '--out', dir, '--slices', String(slices), '--size', String(size)];
  if (patientName) args.push('--patient-name', patientName);
  execFileSync(bin, args, { stdio: 'ignore' });
  const form = new FormData();
  for (const f of readdirSync(dir).sort()) {
    form.append('file', new Blob([readFileSync(join(dir, f))], { type: 'application/dicom' }), f);
  }
  const res = await fetch(`${demo.base_url}/api/v1/studies`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: form,
  });
  const report = await res.json();
  assert.equal(res.status, 200, JSON.stringify(report).slice(0, 500));
  const studyId = report.studies[0].id;
  const grant = await api(demo, token, 'POST', `/api/v1/studies/${studyId}/grants`, { expires_in_days: 30 });
  assert.equal(grant.status, 201, grant.text);
  return { studyId, grant: grant.json };
}

/** Status of a same-origin fetch made by the page itself, with the page's cookies. */
export function pageFetchStatus(page, path) {
  return page.evaluate(async (p) => (await fetch(p, { credentials: 'same-origin', cache: 'no-store' })).status, path);
}

/** A bearer token for the demo's API client (OAuth2 client credentials, form body). */
export async function apiToken(demo) {
  const res = await fetch(`${demo.base_url}/api/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: demo.api_client_id,
      client_secret: demo.api_client_secret,
    }),
  });
  assert.equal(res.status, 200, 'token endpoint accepts the demo client');
  return (await res.json()).access_token;
}

/** One API call with a bearer token; JSON in and out where there is a body. */
export async function api(demo, token, method, path, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${demo.base_url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: keep the status */ }
  return { status: res.status, json, text };
}
