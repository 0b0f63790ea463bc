// How long a patient on a slow phone waits for the first image, compared with the
// cheapest page the server has. Not a test: run by hand and read the JSON it prints.
//
//   cd tests/browser && LICHTKASTEN_BIN=../../target/release/lichtkasten node measure.mjs
//
// The ratio says how many "trivial page loads" the sign-in costs, which stays
// comparable between machines where absolute milliseconds do not.
//
// Then a large CT (BIG_SLICES slices of BIG_SIZE², default 300 × 512², uploaded through
// the API) on the same throttled phone: password to first image painted, to every
// preview of the series in memory, and frames per second while scrolling through the
// whole loaded stack. BIG_SLICES=0 skips it.
import { PHONE, startDemo, launchBrowser, apiToken, uploadSynthStudy } from './support.mjs';

const RUNS = Number(process.env.RUNS || 5);
// A mid-range phone on a poor mobile connection (Lighthouse's "slow 4G" is similar);
// DOWN_MBIT sets another download rate (e.g. 9 for a fair mobile connection).
const PROFILE = {
  latencyMs: 150,
  downloadBitsPerSecond: Number(process.env.DOWN_MBIT || 1.6) * 1_000_000,
  uploadBitsPerSecond: 750_000,
  cpuSlowdown: 4,
};

async function throttledPage(browser) {
  const ctx = await browser.newContext(PHONE);
  const page = await ctx.newPage();
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: PROFILE.latencyMs,
    downloadThroughput: PROFILE.downloadBitsPerSecond / 8,
    uploadThroughput: PROFILE.uploadBitsPerSecond / 8,
  });
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: PROFILE.cpuSlowdown });
  return { ctx, page, cdp };
}

// SCROLL_PROFILE=1: the page's JavaScript is sampled while it scrolls, and the
// functions with the most time of their own are printed (to stderr).
async function profiled(cdp, work) {
  if (!process.env.SCROLL_PROFILE) return work();
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  const result = await work();
  const { profile } = await cdp.send('Profiler.stop');
  const selfMs = new Map();
  const dt = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const id of profile.samples) {
    const f = byId.get(id).callFrame;
    const name = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop()}:${f.lineNumber + 1}`;
    selfMs.set(name, (selfMs.get(name) || 0) + dt);
  }
  const top = [...selfMs].sort((a, b) => b[1] - a[1]).slice(0, 15);
  for (const [name, ms] of top) console.error(`${ms.toFixed(0).padStart(7)} ms  ${name}`);
  return result;
}

// SCROLL_TRACE=1: a Chrome trace of the scroll; the time of each kind of work, by
// thread, is printed (to stderr), native work included (the profile above sees only
// JavaScript).
async function traced(cdp, work) {
  if (!process.env.SCROLL_TRACE) return work();
  const events = [];
  cdp.on('Tracing.dataCollected', ({ value }) => events.push(...value));
  const done = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
  await cdp.send('Tracing.start', {
    transferMode: 'ReportEvents',
    traceConfig: { includedCategories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'cc', 'viz', 'gpu', 'blink', 'skia'] },
  });
  const result = await work();
  await cdp.send('Tracing.end');
  await done;
  const threads = new Map();
  for (const e of events) {
    if (e.ph === 'M' && e.name === 'thread_name') threads.set(`${e.pid}:${e.tid}`, e.args.name);
  }
  // Time of its own per event name and thread: an event's duration less its children's.
  const own = new Map();
  const byThread = new Map();
  for (const e of events) {
    if (e.ph !== 'X' || e.dur == null) continue;
    const k = `${e.pid}:${e.tid}`;
    if (!byThread.has(k)) byThread.set(k, []);
    byThread.get(k).push(e);
  }
  for (const [k, list] of byThread) {
    list.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
    const stack = [];
    const add = (e, us) => {
      const name = `${threads.get(k) || k} ${e.name}`;
      own.set(name, (own.get(name) || 0) + us);
    };
    const selfOf = new Map();
    for (const e of list) {
      while (stack.length && stack[stack.length - 1].ts + stack[stack.length - 1].dur <= e.ts) stack.pop();
      const parent = stack[stack.length - 1];
      if (parent) selfOf.set(parent, (selfOf.get(parent) ?? parent.dur) - Math.min(e.dur, parent.ts + parent.dur - e.ts));
      stack.push(e);
    }
    for (const e of list) add(e, Math.max(0, selfOf.get(e) ?? e.dur));
  }
  const top = [...own].sort((a, b) => b[1] - a[1]).slice(0, 30);
  for (const [name, us] of top) console.error(`${(us / 1000).toFixed(0).padStart(7)} ms  ${name}`);
  return result;
}

async function timeLoad(browser, url) {
  const { ctx, page } = await throttledPage(browser);
  try {
    const t0 = performance.now();
    await page.goto(url, { waitUntil: 'load' });
    return performance.now() - t0;
  } finally {
    await ctx.close();
  }
}

// From the press on "open" to the first viewer image loaded: the password check, the
// viewer page and the first image (findings pages come after the images; both the
// first image of any kind and the first study image are timed).
async function timeSignIn(browser, demo) {
  const { ctx, page } = await throttledPage(browser);
  // The page notes when its first images finish loading (the load event fires once
  // the image is fetched and decodable), so polling from here adds nothing to it.
  await ctx.addInitScript(() => {
    document.addEventListener('load', (e) => {
      const img = e.target;
      if (img.tagName !== 'IMG' || !img.closest('#viewer')) return;
      window.__lkFirst ??= Date.now();
      // The study's first image is the one the server puts in the page for the viewer.
      if (img.id === 'first-image') window.__lkFirstStudy ??= Date.now();
    }, true);
  });
  try {
    await page.goto(demo.patient_link, { waitUntil: 'load' });
    await page.fill('#password', demo.password);
    const t0 = Date.now();
    await page.click('button[type=submit]');
    await page.waitForFunction(() => window.__lkFirstStudy, null, { timeout: 120_000 });
    const marks = await page.evaluate(() => [window.__lkFirst, window.__lkFirstStudy]);
    return { first: marks[0] - t0, study: marks[1] - t0 };
  } finally {
    await ctx.close();
  }
}

const BIG_SLICES = Number(process.env.BIG_SLICES ?? 300);
const BIG_SIZE = Number(process.env.BIG_SIZE || 512);

// The large study: first paint of the server's image and of the viewer's canvas, all
// previews in memory, then a scroll through the stack one slice per animation frame.
async function timeBigStudy(browser, grant) {
  const { ctx, page, cdp } = await throttledPage(browser);
  await ctx.addInitScript(() => {
    document.addEventListener('load', (e) => {
      if (e.target.id === 'first-image') window.__lkFirstImg ??= Date.now();
    }, true);
    // Checked every frame: cheap, and independent of the viewer's internals.
    const poll = () => {
      const root = document.getElementById('image-viewer');
      const pane = root?.querySelector('.iv-pane');
      if (pane?.dataset.shown) window.__lkCanvas ??= Date.now();
      if (root?.dataset.total && root.dataset.loaded === root.dataset.total) window.__lkAll ??= Date.now();
      if (!window.__lkAll) requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  });
  try {
    await page.goto(grant.link, { waitUntil: 'load' });
    await page.fill('#password', grant.password);
    const t0 = Date.now();
    await page.click('button[type=submit]');
    await page.waitForFunction(() => window.__lkCanvas, null, { timeout: 120_000 });
    await page.waitForFunction(() => window.__lkAll, null, { timeout: 900_000, polling: 1000 });
    const [img, canvas, all] = await page.evaluate(() => [window.__lkFirstImg, window.__lkCanvas, window.__lkAll]);
    // Scroll: one ArrowDown per animation frame from the first slice to the last,
    // noting each frame's time and whether the slice asked for is the one drawn.
    const scroll = await traced(cdp, () => profiled(cdp, () => page.evaluate(() => new Promise((resolve) => {
      const pane = document.querySelector('#image-viewer .iv-pane');
      pane.focus();
      pane.dispatchEvent(new KeyboardEvent('keydown', { key: 'Home', bubbles: true }));
      const total = Number(pane.dataset.total);
      const times = [];
      let exact = 0;
      const frame = (ts) => {
        times.push(ts);
        const want = Number(pane.dataset.index);
        if ((pane.dataset.shown || '').length && pane.dataset.drawnIndex === String(want)) exact++;
        if (want >= total) {
          const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
          resolve({
            frames: times.length,
            fps: (1000 * (times.length - 1)) / (times[times.length - 1] - times[0]),
            p95_frame_ms: gaps[Math.floor(gaps.length * 0.95)],
            slowest_frame_ms: gaps[gaps.length - 1],
            exact_slice_frames: exact,
          });
          return;
        }
        pane.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown', bubbles: true }));
        requestAnimationFrame(frame);
      };
      requestAnimationFrame(frame);
    }))));
    return { first_image_ms: img - t0, first_canvas_ms: canvas - t0, all_previews_ms: all - t0, scroll };
  } finally {
    await ctx.close();
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (xs) => xs.map((x) => Math.round(x));

const running = await startDemo();
const browser = await launchBrowser();
try {
  const { demo } = running;
  // One unmeasured round first: the server's and the browser's first time is not typical.
  await timeLoad(browser, `${demo.base_url}/access`);
  await timeSignIn(browser, demo);

  const healthz = [], access = [], signIn = [], studyImage = [];
  for (let i = 0; i < RUNS; i++) {
    healthz.push(await timeLoad(browser, `${demo.base_url}/healthz`));
    access.push(await timeLoad(browser, `${demo.base_url}/access`));
    const t = await timeSignIn(browser, demo);
    signIn.push(t.first);
    studyImage.push(t.study);
  }
  const floor = median(access);
  const result = {
    runs: RUNS,
    profile: PROFILE,
    healthz_ms: { median: Math.round(median(healthz)), runs: round(healthz) },
    floor_access_page_ms: { median: Math.round(floor), runs: round(access) },
    submit_to_first_image_ms: { median: Math.round(median(signIn)), runs: round(signIn) },
    submit_to_first_study_image_ms: { median: Math.round(median(studyImage)), runs: round(studyImage) },
    ratio_first_image_to_floor: Number((median(signIn) / floor).toFixed(2)),
  };
  if (BIG_SLICES > 0) {
    const token = await apiToken(demo);
    const t = Date.now();
    const { grant } = await uploadSynthStudy(demo, token, { slices: BIG_SLICES, size: BIG_SIZE });
    result.big_study = { slices: BIG_SLICES, size: BIG_SIZE, upload_ms: Date.now() - t, ...(await timeBigStudy(browser, grant)) };
  }
  console.log(JSON.stringify(result, null, 2));
} finally {
  await browser.close();
  running.stop();
}
