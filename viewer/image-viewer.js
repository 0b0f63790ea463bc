// The patient's image viewer: takes over the first image the server already put in
// the page, builds the series strip, the image pane(s) and the tools around it, and
// loads the rest of the study in the background (current image, then its neighbours
// outward, then the rest of the series), drawing only from memory while scrolling.
//
// Reads the study manifest embedded in the page (#study-manifest); all patient text
// goes into the page as textContent.
import { texts } from './iv-i18n.js';
import { ImageStore } from './iv-loader.js';
import { Pane } from './iv-pane.js';
import { PRESETS, syncIndex } from './iv-geometry.js';

const root = document.getElementById('image-viewer');
const manifestEl = document.getElementById('study-manifest');

// Decoded images kept in memory: a phone gets less than a desktop (a 512² slice is 1 MB).
const BUDGET = window.matchMedia('(pointer: coarse)').matches ? 160e6 : 600e6;
const SPEEDS = [0.25, 0.5, 1, 2];
// Slices per stack request: small enough that the first arrive soon, large enough
// that a 300-slice CT takes a handful of round trips.
const STACK_CHUNK = 50;

function el(tag, cls, parent) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}

// Line icons drawn here (no icon font: phones differ in which symbols they have).
// Each is a list of [path, filled].
const ICONS = {
  prev: [['M6 15l6-6 6 6']],
  next: [['M6 9l6 6 6-6']],
  scroll: [['M12 3v18M8 7l4-4 4 4M8 17l4 4 4-4']],
  pan: [['M12 3v18M3 12h18M9 6l3-3 3 3M9 18l3 3 3-3M6 9l-3 3 3 3M18 9l3 3-3 3']],
  window: [['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z'], ['M12 3a9 9 0 0 0 0 18z', true]],
  measure: [['M3 16L16 3l5 5L8 21z'], ['M7 12l2 2M10 9l2 2M13 6l2 2']],
  invert: [['M4 4h16v16H4z'], ['M4 4h16L4 20z', true]],
  rotate: [['M19 12a7 7 0 1 1-2-4.9'], ['M19 4v4h-4']],
  flip: [['M12 3v18'], ['M9 6L3 18h6z', true], ['M15 6l6 12h-6z']],
  reset: [['M5 12a7 7 0 1 0 2-4.9'], ['M5 4v4h4']],
  zoomIn: [['M10.5 4a6.5 6.5 0 1 0 0 13a6.5 6.5 0 1 0 0-13zM15.5 15.5L21 21M7.5 10.5h6M10.5 7.5v6']],
  zoomOut: [['M10.5 4a6.5 6.5 0 1 0 0 13a6.5 6.5 0 1 0 0-13zM15.5 15.5L21 21M7.5 10.5h6']],
  compare: [['M3 5h8v14H3zM13 5h8v14h-8z']],
  sync: [['M10 14l4-4M10.5 7.5l1.5-1.5a3.5 3.5 0 0 1 5 5L15.5 12.5M13.5 16.5L12 18a3.5 3.5 0 0 1-5-5l1.5-1.5']],
  fullscreen: [['M3 9V3h6M21 9V3h-6M3 15v6h6M21 15v6h-6']],
  download: [['M12 3v12M7 10l5 5 5-5M4 20h16']],
  play: [['M7 4l13 8-13 8z', true]],
  pause: [['M6 4h4v16H6zM14 4h4v16h-4z', true]],
};

const SVG = 'http://www.w3.org/2000/svg';

function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '24');
  svg.setAttribute('height', '24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', 'iv-glyph');
  for (const [d, filled] of ICONS[name]) {
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    path.setAttribute('fill', filled ? 'currentColor' : 'none');
    path.setAttribute('stroke', 'currentColor');
    path.setAttribute('stroke-width', '2');
    path.setAttribute('stroke-linecap', 'round');
    path.setAttribute('stroke-linejoin', 'round');
    svg.appendChild(path);
  }
  return svg;
}

function fill(pattern, inst, frame) {
  return pattern.replace('{instance}', encodeURIComponent(inst)).replace('{frame}', String(frame));
}

/** The study's image series, each a flat stack of (instance, frame) items. */
function seriesOf(manifest) {
  const out = [];
  for (const s of manifest.study?.series || []) {
    const images = (s.instances || []).filter((i) => i.rows > 0 && i.columns > 0);
    if (!images.length) continue;
    const stack = [];
    for (const inst of images) {
      const frames = Math.max(1, inst.frames || 1);
      const view = inst.view || {};
      for (let f = 1; f <= frames; f++) {
        stack.push({
          index: stack.length, inst, frame: f, key: `${inst.id}/${f}`, view,
          cols: inst.columns, rows: inst.rows,
          // The window needs the stored one as a starting point (RGB images have none).
          windowable: Array.isArray(view.window),
        });
      }
    }
    const loop = images.find((i) => (i.frames || 1) > 1);
    const ft = loop?.view?.frame_time_ms;
    out.push({
      id: s.id,
      number: s.series_number,
      modality: s.modality || '',
      description: s.description || '',
      first: images[0],
      stack,
      cine: !!loop,
      fps: ft > 0 ? Math.min(60, 1000 / ft) : 10,
    });
  }
  return out;
}

class Viewer {
  constructor(rootEl, manifest) {
    this.root = rootEl;
    this.lang = rootEl.dataset.lang === 'en' ? 'en' : 'de';
    this.t = texts(this.lang);
    this.manifest = manifest;
    this.display = manifest.display || {};
    this.urls = manifest.urls;
    this.previewPx = manifest.preview_px || 768;
    this.series = seriesOf(manifest);
    this.tool = 'scroll';
    this.compare = false;
    this.sync = true;
    this.playing = false;
    this.speed = 1;
    this.thumbs = new Map();
    this.numberFormat = new Intl.NumberFormat(this.lang === 'en' ? 'en-GB' : 'de-DE', {
      minimumFractionDigits: 1, maximumFractionDigits: 1,
    });
    // Where each slice sits, for deciding what to keep decoded.
    this.where = new Map();
    this.series.forEach((s, si) => s.stack.forEach((it, i) => this.where.set(it.key, [si, i])));

    const winParam = (w) => (w ? `window=${Math.round(w[0])},${Math.round(w[1])}` : '');
    const wKey = (w) => (w ? `@${Math.round(w[0])},${Math.round(w[1])}` : '');
    const frameUrl = (it) => fill(this.urls.frame, it.inst.id, it.frame);
    const px = this.previewPx;
    // The plain preview and exact URLs are exactly the ones the server keeps prepared.
    this.keys = {
      // The small scrolling size, fetched in stacks of many slices per request.
      scroll: (it) => `s:${it.key}`,
      preview: (it, w) => `p:${it.key}${wKey(w)}`,
      exact: (it, w) => `x:${it.key}${wKey(w)}`,
      previewUrl: (it, w) => `${frameUrl(it)}?viewport=${px},${px}&format=jpeg${w ? `&${winParam(w)}` : ''}`,
      exactUrl: (it, w) => `${frameUrl(it)}${w ? `?${winParam(w)}` : ''}`,
    };

    this.store = new ImageStore({ onReady: (k) => this.onReady(k), budgetBytes: BUDGET });
    this.store.planner = () => this.plan();
    this.store.rank = (k) => this.rank(k);
    this.build();
  }

  // ---- layout --------------------------------------------------------------------

  build() {
    const t = this.t;
    const r = this.root;
    this.first = document.getElementById('first-image');
    r.classList.add('iv-on');
    r.setAttribute('aria-label', t.viewer);

    this.helpId = 'iv-help';
    const help = el('p', 'visually-hidden', r);
    help.id = this.helpId;
    help.textContent = t.paneHelp;

    this.strip = el('div', 'iv-strip', r);
    this.strip.setAttribute('role', 'group');
    this.strip.setAttribute('aria-label', t.seriesStrip);
    this.stripButtons = this.series.map((s) => {
      const b = el('button', 'iv-thumb', this.strip);
      b.type = 'button';
      const n = s.stack.length;
      b.setAttribute('aria-label', `${t.showSeries} ${s.number}${s.description ? `: ${s.description}` : ''}, ${n} ${s.cine ? t.frames : t.images}`);
      const img = el('img', '', b);
      img.alt = '';
      img.width = 64;
      img.height = 64;
      const cap = el('span', 'iv-thumb-label', b);
      cap.textContent = `${s.modality} ${s.number} · ${n}`;
      b.addEventListener('click', () => this.showSeries(s));
      this.thumbs.set(s.first.id, img);
      return b;
    });

    this.stage = el('div', 'iv-stage', r);
    this.progress = el('div', 'iv-progress', r);
    this.progressBar = el('div', 'iv-progress-bar', this.progress);
    this.progress.setAttribute('aria-hidden', 'true');

    // Slice navigation: buttons either side of a slider, the cine controls after.
    const nav = el('div', 'iv-nav', r);
    this.prevBtn = this.button(nav, 'prev', '', t.prev, () => this.active.step(-1));
    this.slider = el('input', 'iv-slider', nav);
    this.slider.type = 'range';
    this.slider.min = '1';
    this.slider.step = '1';
    this.slider.setAttribute('aria-label', t.slider);
    this.slider.addEventListener('input', () => this.active.setIndex(Number(this.slider.value) - 1));
    this.nextBtn = this.button(nav, 'next', '', t.next, () => this.active.step(1));
    this.playBtn = this.button(nav, 'play', t.play, t.playLong, () => this.togglePlay());
    this.speedSel = el('select', 'iv-select', nav);
    this.speedSel.setAttribute('aria-label', t.speed);
    this.speedSel.addEventListener('change', () => { this.speed = Number(this.speedSel.value); });

    const tools = el('div', 'iv-tools', r);
    tools.setAttribute('role', 'toolbar');
    tools.setAttribute('aria-label', t.tools);
    this.toolBtns = {
      scroll: this.button(tools, 'scroll', t.toolScroll, t.toolScrollLong, () => this.setTool('scroll')),
      pan: this.button(tools, 'pan', t.toolPan, t.toolPanLong, () => this.setTool('pan')),
      window: this.button(tools, 'window', t.toolWindow, t.toolWindowLong, () => this.setTool('window')),
      measure: this.button(tools, 'measure', t.toolMeasure, t.toolMeasureLong, () => this.setTool('measure')),
    };
    this.zoomInBtn = this.button(tools, 'zoomIn', t.zoomIn, t.zoomIn, () => this.active.zoomAt(1.25));
    this.zoomOutBtn = this.button(tools, 'zoomOut', t.zoomOut, t.zoomOut, () => this.active.zoomAt(0.8));
    // Fingers pinch; the buttons are for mouse and keyboard users.
    this.zoomInBtn.classList.add('iv-zoom');
    this.zoomOutBtn.classList.add('iv-zoom');
    this.invertBtn = this.button(tools, 'invert', t.invert, t.invertLong, () => this.invert());
    this.rotateBtn = this.button(tools, 'rotate', t.rotate, t.rotateLong, () => this.active.rotate());
    this.flipBtn = this.button(tools, 'flip', t.flip, t.flipLong, () => this.active.flip());
    this.resetBtn = this.button(tools, 'reset', t.reset, t.resetLong, () => this.active.reset());
    this.compareBtn = this.button(tools, 'compare', t.compare, t.compareLong, () => this.toggleCompare());
    this.syncBtn = this.button(tools, 'sync', t.sync, t.syncLong, () => this.toggleSync());
    this.fsBtn = this.button(tools, 'fullscreen', t.fullscreen, t.fullscreenLong, () => this.toggleFullscreen());
    this.presetSel = el('select', 'iv-select iv-preset', tools);
    this.presetSel.setAttribute('aria-label', t.window);
    if (this.manifest.can_download && this.urls.download) {
      this.download = el('a', 'iv-btn download-image', tools);
      this.download.setAttribute('download', '');
      this.download.setAttribute('aria-label', t.downloadLong);
      this.download.title = t.downloadLong;
      this.download.appendChild(icon('download'));
      el('span', 'iv-label', this.download).textContent = t.download;
    }
    for (const b of [...Object.values(this.toolBtns), this.invertBtn, this.flipBtn, this.compareBtn, this.syncBtn, this.fsBtn]) {
      b.setAttribute('aria-pressed', 'false');
    }

    this.live = el('div', 'visually-hidden', r);
    this.live.setAttribute('aria-live', 'polite');
    this.live.setAttribute('role', 'status');

    this.panes = [new Pane(this, this.stage, '')];
    this.active = this.panes[0];
    // The server-drawn first image stays on screen, in the pane, until the canvas has
    // drawn it (from the very same decoded image: no second download).
    if (this.first) {
      this.first.classList.add('iv-first');
      this.active.el.appendChild(this.first);
    }

    r.addEventListener('keydown', (e) => this.key(e));
    document.addEventListener('fullscreenchange', () => this.fullscreenChanged());
    document.addEventListener('webkitfullscreenchange', () => this.fullscreenChanged());
  }

  button(parent, glyph, label, long, onClick) {
    const b = el('button', 'iv-btn', parent);
    b.type = 'button';
    b.setAttribute('aria-label', long);
    b.title = long;
    b.appendChild(icon(glyph));
    if (label) el('span', 'iv-label', b).textContent = label;
    b.addEventListener('click', onClick);
    return b;
  }

  start() {
    const s = this.series[0];
    const it = s.stack[0];
    this.active.setSeries(s, 0);
    this.updateControls();
    const go = () => {
      // Background loading starts once the first image is in, so nothing competes
      // with it for a slow phone connection.
      this.loadThumbs();
      this.store.pump();
    };
    const img = this.first;
    if (img && img.dataset.instance === it.inst.id) {
      if (img.complete && img.naturalWidth > 0) {
        this.store.adopt(this.keys.preview(it), img);
        go();
      } else {
        img.addEventListener('load', () => { this.store.adopt(this.keys.preview(it), img); go(); }, { once: true });
        img.addEventListener('error', go, { once: true });
      }
    } else {
      go();
    }
  }

  loadThumbs() {
    for (const s of this.series) {
      const img = this.thumbs.get(s.first.id);
      if (img && !img.getAttribute('src')) img.src = fill(this.urls.thumbnail, s.first.id, 1);
    }
  }

  /** The series-strip thumbnail as a stand-in while a series' first slice loads. */
  thumbFor(it) {
    const img = this.thumbs.get(it.inst.id);
    return img && img.complete && img.naturalWidth > 0 ? img : null;
  }

  // ---- loading plan --------------------------------------------------------------

  /** The next image to fetch: what is on screen first, then outward from it. */
  plan() {
    const panes = [this.active, ...this.panes.filter((p) => p !== this.active)];
    const store = this.store;
    const k = this.keys;
    // URLs are built only for what is actually missing: this runs on every scroll step.
    const preview = (it, w) => {
      const key = k.preview(it, w);
      return store.known(key) ? null : { key, url: k.previewUrl(it, w) };
    };
    const exact = (it, w) => {
      const key = k.exact(it, w);
      return store.known(key) ? null : { key, url: k.exactUrl(it, w) };
    };
    // The exact image of a settled slice and, with a custom window, its server render.
    for (const p of panes) {
      const it = p.item;
      if (!it || !p.settled || p.gesture) continue;
      const w = p.view.window;
      const t = p.wantsExact(it) ? exact(it, w) : (w ? preview(it, w) : null);
      if (t) return t;
    }
    // The current slice's preview and its next neighbours, then the whole series at
    // the scrolling size in stacks, nearest stack first, then the rest of the previews.
    for (const p of panes) {
      const st = p.stack;
      for (let d = 0; d <= 2; d++) {
        for (const i of d === 0 ? [p.index] : [p.index + d, p.index - d]) {
          const t = st[i] && preview(st[i]);
          if (t) return t;
        }
      }
    }
    for (const p of panes) {
      const t = this.stackTask(p);
      if (t) return t;
    }
    for (const p of panes) {
      const st = p.stack;
      const w = p.settled ? p.view.window : null;
      // A series whose previews are all here needs no scan (unless a window is set).
      if (p.series.previewsKnown && !w) continue;
      const dir = p.dir || 1;
      for (let d = 0; d < st.length; d++) {
        for (const i of d === 0 ? [p.index] : [p.index + dir * d, p.index - dir * d]) {
          const t = st[i] && preview(st[i]);
          if (t) return t;
        }
        // Neighbours in the patient's window, once the current slice is done.
        if (d > 0 && d <= 2 && w) {
          for (const i of [p.index + d, p.index - d]) {
            const t = st[i] && preview(st[i], w);
            if (t) return t;
          }
        }
      }
      p.series.previewsKnown = true;
    }
    return null;
  }

  /** The nearest run of slices not yet asked for at the scrolling size, as one request. */
  stackTask(p) {
    const s = p.series;
    if (s.scrollKnown || !this.urls.stack) return null;
    const st = p.stack;
    const chunks = Math.ceil(st.length / STACK_CHUNK);
    const here = Math.floor(p.index / STACK_CHUNK);
    for (let d = 0; d < chunks; d++) {
      for (const c of d === 0 ? [here] : [here + d, here - d]) {
        if (c < 0 || c >= chunks) continue;
        const from = c * STACK_CHUNK;
        const items = st.slice(from, from + STACK_CHUNK);
        const keys = items.map((it) => this.keys.scroll(it));
        if (keys.every((k) => this.store.known(k))) continue;
        const url = `${this.urls.stack.replace('{series}', encodeURIComponent(s.id))}?variant=scroll&from=${from}&count=${items.length}`;
        return { keys, url };
      }
    }
    s.scrollKnown = true;
    return null;
  }

  /** How far an image is from any pane's current slice (decoded-memory priority). */
  rank(key) {
    const itemKey = key.slice(2).split('@')[0];
    const at = this.where.get(itemKey);
    if (!at) return 1e9;
    let best = 1e6;
    for (const p of this.panes) {
      if (p.series === this.series[at[0]]) best = Math.min(best, Math.abs(at[1] - p.index));
    }
    // Custom-window renders are worth less than the plain preview of the same slice.
    return key.includes('@') ? best * 2 + 1 : best;
  }

  onReady() {
    for (const p of this.panes) p.invalidate();
    this.updateProgress();
  }

  updateProgress() {
    const s = this.active.series;
    const st = s.stack;
    // A slice counts once it can be shown at either preview size.
    const n = s.previewsLoaded ? st.length : st.filter((it) => this.store.has(this.keys.preview(it)) || this.store.has(this.keys.scroll(it))).length;
    if (n >= st.length) s.previewsLoaded = true;
    if (this.root.dataset.loaded !== String(n)) this.root.dataset.loaded = String(n);
    this.root.dataset.total = String(st.length);
    this.progress.hidden = n >= st.length;
    this.progressBar.style.width = `${(100 * n) / Math.max(1, st.length)}%`;
  }

  // Called by a pane after drawing: the server's first image can step aside.
  drew() {
    if (this.first && !this.first.hidden) this.first.hidden = true;
  }

  // ---- pane events ---------------------------------------------------------------

  indexChanged(pane, silent) {
    if (pane === this.active) this.updateNav();
    if (this.compare && this.sync && !silent) {
      for (const other of this.panes) {
        if (other !== pane) other.setIndex(syncIndex(pane.stack, pane.index, other.stack), { silent: true });
      }
    }
    // Decode the next few slices ahead of the finger.
    const warm = [];
    for (let d = -6; d <= 6; d++) {
      const it = pane.stack[pane.index + d];
      if (it) warm.push(this.keys.preview(it), this.keys.exact(it));
    }
    this.store.warm(warm);
    this.store.pump();
    clearTimeout(this.announceTimer);
    this.announceTimer = setTimeout(() => this.announce(pane.counterText(true)), 500);
  }

  settled() {
    this.store.pump();
  }

  viewChanged(pane) {
    if (!pane.gesture || pane.gesture.tool !== 'window') pane.settle();
    if (pane === this.active) this.updateToggles();
  }

  windowCommitted(pane) {
    clearTimeout(pane.settleTimer);
    pane.settled = true;
    this.updateToggles();
    this.store.pump();
  }

  activate(pane) {
    if (this.active === pane) return;
    this.active = pane;
    for (const p of this.panes) p.el.classList.toggle('iv-active', p === pane && this.compare);
    this.updateControls();
  }

  announce(text) {
    this.live.textContent = text;
  }

  formatMm(mm) {
    return `${this.numberFormat.format(mm)} mm`;
  }

  // ---- controls ------------------------------------------------------------------

  showSeries(s) {
    this.stopPlay();
    const pane = this.active;
    let index = 0;
    const other = this.panes.find((p) => p !== pane);
    if (this.compare && this.sync && other) index = syncIndex(other.stack, other.index, s.stack);
    pane.setSeries(s, index);
    this.updateControls();
    this.updateProgress();
    this.store.pump();
    this.announce(pane.counterText(true));
  }

  setTool(tool) {
    this.tool = tool;
    this.updateToggles();
  }

  invert() {
    this.active.view.invert = !this.active.view.invert;
    this.active.afterViewChange();
  }

  updateControls() {
    const t = this.t;
    const pane = this.active;
    const s = pane.series;
    if (!s) return;
    this.stripButtons.forEach((b, i) => b.setAttribute('aria-pressed', String(this.series[i] === s)));
    const n = pane.stack.length;
    this.slider.max = String(n);
    for (const e of [this.slider, this.prevBtn, this.nextBtn]) e.hidden = n <= 1;
    this.playBtn.hidden = !s.cine;
    this.speedSel.hidden = !s.cine;
    if (s.cine) {
      this.speedSel.replaceChildren(...SPEEDS.map((f) => {
        const o = document.createElement('option');
        o.value = String(f);
        o.textContent = `${Math.round(s.fps * f * 10) / 10} ${t.perSecond}`;
        o.selected = f === this.speed;
        return o;
      }));
    }
    // Presets: CT's four, otherwise only the stored window.
    const opts = [['', t.asStored]];
    if (s.modality === 'CT') {
      opts.push(['soft', t.presetSoft], ['lung', t.presetLung], ['bone', t.presetBone], ['brain', t.presetBrain]);
    }
    this.presetSel.replaceChildren(...opts.map(([v, label]) => {
      const o = document.createElement('option');
      o.value = v;
      o.textContent = `${t.window}: ${label}`;
      return o;
    }));
    this.presetSel.onchange = () => {
      const v = this.presetSel.value;
      this.active.view.window = v ? [...PRESETS[v]] : null;
      this.active.afterViewChange();
      this.windowCommitted(this.active);
    };
    this.syncBtn.hidden = !this.compare;
    this.updateNav();
    this.updateToggles();
  }

  updateNav() {
    const pane = this.active;
    const it = pane.item;
    if (!it) return;
    this.slider.value = String(pane.index + 1);
    this.slider.setAttribute('aria-valuetext', pane.counterText(true));
    if (this.download) {
      this.download.href = fill(this.urls.download, it.inst.id, it.frame);
    }
    this.presetSel.disabled = !it.windowable;
  }

  updateToggles() {
    const pane = this.active;
    const t = this.t;
    for (const [name, b] of Object.entries(this.toolBtns)) b.setAttribute('aria-pressed', String(this.tool === name));
    this.invertBtn.setAttribute('aria-pressed', String(pane.view.invert));
    this.flipBtn.setAttribute('aria-pressed', String(pane.view.flipH));
    this.compareBtn.setAttribute('aria-pressed', String(this.compare));
    this.syncBtn.setAttribute('aria-pressed', String(this.sync));
    const w = pane.view.window;
    const preset = w ? Object.entries(PRESETS).find(([, p]) => p[0] === w[0] && p[1] === w[1]) : null;
    const want = w ? (preset ? preset[0] : null) : '';
    if (want !== null) this.presetSel.value = want;
    else if (this.presetSel.value !== '__custom') {
      // A dragged window is none of the presets: show it as such.
      let o = this.presetSel.querySelector('option[value="__custom"]');
      if (!o) {
        o = document.createElement('option');
        o.value = '__custom';
        o.disabled = true;
        this.presetSel.appendChild(o);
      }
      o.textContent = `${t.window}: C ${Math.round(w[0])} W ${Math.round(w[1])}`;
      this.presetSel.value = '__custom';
    }
    const fs = this.isFullscreen();
    this.fsBtn.setAttribute('aria-pressed', String(fs));
    this.fsBtn.setAttribute('aria-label', fs ? t.exitFullscreen : t.fullscreenLong);
    this.playBtn.setAttribute('aria-label', this.playing ? t.pauseLong : t.playLong);
    this.playBtn.querySelector('.iv-glyph').replaceWith(icon(this.playing ? 'pause' : 'play'));
    this.playBtn.querySelector('.iv-label').textContent = this.playing ? t.pause : t.play;
  }

  // ---- cine ----------------------------------------------------------------------

  togglePlay() {
    if (this.playing) this.stopPlay();
    else this.startPlay();
  }

  startPlay() {
    const pane = this.active;
    if (!pane.series?.cine || pane.stack.length < 2) return;
    this.playing = true;
    this.playPane = pane;
    let last = performance.now();
    let acc = 0;
    const tick = (now) => {
      if (!this.playing) return;
      acc += now - last;
      last = now;
      const interval = 1000 / (pane.series.fps * this.speed);
      if (acc >= interval) {
        acc = Math.min(acc - interval, interval);
        const next = (pane.index + 1) % pane.stack.length;
        // Wait for a frame still loading rather than show a stale one out of order.
        if (this.store.has(this.keys.preview(pane.stack[next])) || this.store.has(this.keys.exact(pane.stack[next]))) {
          pane.setIndex(next);
        }
      }
      this.playRaf = requestAnimationFrame(tick);
    };
    this.playRaf = requestAnimationFrame(tick);
    this.updateToggles();
  }

  stopPlay() {
    if (!this.playing) return;
    this.playing = false;
    cancelAnimationFrame(this.playRaf);
    this.updateToggles();
    this.announce(this.active.counterText(true));
  }

  // ---- comparison ----------------------------------------------------------------

  toggleCompare() {
    const t = this.t;
    if (this.compare) {
      const [keep, ...rest] = this.panes;
      for (const p of rest) p.el.remove();
      this.panes = [keep];
      this.compare = false;
      this.stage.classList.remove('iv-two');
      keep.name = '';
      keep.el.classList.remove('iv-active');
      this.activate(keep);
      this.compareBtn.querySelector('.iv-label').textContent = t.compare;
      this.compareBtn.setAttribute('aria-label', t.compareLong);
    } else {
      this.compare = true;
      this.stage.classList.add('iv-two');
      const a = this.active;
      const b = new Pane(this, this.stage, t.rightPane);
      a.name = t.leftPane;
      this.panes = [a, b];
      // Another cross-sectional series if there is one, else the same series again.
      const cur = a.series;
      const other = this.series.find((s) => s !== cur && s.stack.length > 1 && !s.cine) || cur;
      b.setSeries(other, this.sync ? syncIndex(a.stack, a.index, other.stack) : 0);
      this.compareBtn.querySelector('.iv-label').textContent = t.compareOff;
      this.compareBtn.setAttribute('aria-label', t.compareOff);
      this.activate(b);
      a.el.classList.remove('iv-active');
      b.el.classList.add('iv-active');
    }
    for (const p of this.panes) p.invalidate();
    this.updateControls();
    this.store.pump();
  }

  toggleSync() {
    this.sync = !this.sync;
    if (this.sync) this.indexChanged(this.active, false);
    this.updateToggles();
  }

  // ---- full screen ---------------------------------------------------------------

  isFullscreen() {
    return document.fullscreenElement === this.root || document.webkitFullscreenElement === this.root
      || this.root.classList.contains('iv-fullscreen');
  }

  toggleFullscreen() {
    if (document.fullscreenElement || document.webkitFullscreenElement) {
      (document.exitFullscreen || document.webkitExitFullscreen).call(document);
      return;
    }
    if (this.root.classList.contains('iv-fullscreen')) {
      this.pseudoFullscreen(false);
      return;
    }
    const req = this.root.requestFullscreen || this.root.webkitRequestFullscreen;
    // iPhone Safari has no element full screen: a fixed layer over the page instead.
    if (req && (document.fullscreenEnabled || document.webkitFullscreenEnabled)) {
      Promise.resolve(req.call(this.root)).catch(() => this.pseudoFullscreen(true));
    } else {
      this.pseudoFullscreen(true);
    }
  }

  pseudoFullscreen(on) {
    this.root.classList.toggle('iv-fullscreen', on);
    document.documentElement.classList.toggle('iv-locked', on);
    this.fullscreenChanged();
  }

  fullscreenChanged() {
    this.updateToggles();
    for (const p of this.panes) p.resize();
  }

  // ---- keyboard ------------------------------------------------------------------

  key(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = e.target.tagName;
    if (tag === 'SELECT') return;
    const field = tag === 'INPUT';
    const pane = this.active;
    const n = pane.stack.length;
    const page = Math.max(1, Math.round(n / 10));
    const nav = {
      ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: page, PageUp: -page,
    };
    let done = true;
    if (e.key in nav) {
      if (field) return;
      pane.step(nav[e.key]);
    } else if (e.key === 'Home' || e.key === 'End') {
      if (field) return;
      pane.setIndex(e.key === 'Home' ? 0 : n - 1);
    } else if (e.key === '+' || e.key === '=') pane.zoomAt(1.25);
    else if (e.key === '-') pane.zoomAt(0.8);
    else if (e.key === 'i' || e.key === 'I') this.invert();
    else if (e.key === 'r' || e.key === 'R') pane.rotate();
    else if (e.key === 'f' || e.key === 'F') pane.flip();
    else if (e.key === 'w' || e.key === 'W') this.setTool('window');
    else if (e.key === 'm' || e.key === 'M') this.setTool('measure');
    else if (e.key === 's' || e.key === 'S') this.setTool('scroll');
    else if (e.key === 'p' || e.key === 'P') this.setTool('pan');
    else if (e.key === '0') pane.reset();
    else if (e.key === ' ') {
      // Space on a button presses that button.
      if (tag === 'BUTTON' || tag === 'A' || field) return;
      this.togglePlay();
    } else if (e.key === 'Escape' && this.root.classList.contains('iv-fullscreen')) {
      this.pseudoFullscreen(false);
    } else done = false;
    if (done) e.preventDefault();
  }
}

function boot() {
  if (!root || !manifestEl) return;
  let manifest;
  try {
    manifest = JSON.parse(manifestEl.textContent);
  } catch (_) {
    return; // Without a manifest the server's first image stays as it is.
  }
  // Nothing to show (only documents): leave the section as the server made it.
  if (!seriesOf(manifest).length) return;
  new Viewer(root, manifest).start();
}

boot();
