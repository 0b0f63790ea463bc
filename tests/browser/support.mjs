// Shared by the browser tests and the measurement script: a demo server of the built
// binary, Debian's Chromium, TOTP codes and the few steps every patient test repeats.
//
// Needs: LICHTKASTEN_BIN (the built binary), Chromium at /usr/bin/chromium.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync } from 'node:fs';
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

/** Waits until the first `count` viewer images are decoded (later ones load lazily). */
export async function waitForViewerImages(page, count = 2) {
  await page.waitForFunction((n) => {
    const imgs = [...document.querySelectorAll('#viewer img')];
    return imgs.length > 0 && imgs.slice(0, n).every((i) => i.complete && i.naturalWidth > 0);
  }, count);
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
