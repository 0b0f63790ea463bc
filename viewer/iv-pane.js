// One image pane: a canvas that draws the current slice from memory, its overlays, and
// the touch, mouse and wheel gestures on it. The viewer (image-viewer.js) owns the
// panes, the toolbar and the loading plan.
import {
  viewMatrix, edgeLetters, windowLut, distanceMm, fitInside,
} from './iv-geometry.js';

const MIN_ZOOM = 0.5;
const MAX_ZOOM = 20;
// Without scrolling for this long a slice counts as "settled": time for the exact render.
const SETTLE_MS = 150;

function el(tag, cls, parent) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}

// Overlays change on every slice; writing the DOM only when the text differs keeps
// scrolling cheap.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function freshView() {
  return { zoom: 1, panX: 0, panY: 0, rotation: 0, flipH: false, invert: false, window: null };
}

export class Pane {
  constructor(viewer, parent, name) {
    this.viewer = viewer;
    this.t = viewer.t;
    this.series = null;
    this.stack = [];
    this.index = 0;
    this.view = freshView();
    this.settled = true;
    this.measures = new Map();
    this.drawing = null;
    this.pointers = new Map();
    this.gesture = null;
    this.cssW = 0;
    this.cssH = 0;
    this.dpr = Math.min(2, window.devicePixelRatio || 1);
    this.pending = false;
    this.drawnKey = null;

    const t = this.t;
    this.el = el('div', 'iv-pane', parent);
    this.el.tabIndex = 0;
    this.el.setAttribute('role', 'application');
    this.el.setAttribute('aria-roledescription', t.pane);
    this.el.setAttribute('aria-describedby', viewer.helpId);
    this.name = name;
    this.canvas = el('canvas', 'iv-canvas', this.el);
    this.canvas.setAttribute('role', 'img');
    this.ctx = this.canvas.getContext('2d', { alpha: false });
    const ov = el('div', 'iv-overlay', this.el);
    ov.setAttribute('aria-hidden', 'true');
    this.ov = {};
    for (const c of ['tl', 'tr', 'bl', 'br']) this.ov[c] = el('div', `iv-corner iv-${c}`, ov);
    for (const c of ['top', 'right', 'bottom', 'left']) this.ov[c] = el('div', `iv-orient iv-o-${c}`, ov);
    this.msg = el('div', 'iv-msg', this.el);
    this.msg.hidden = true;
    this.busy = el('div', 'iv-busy', this.el);
    this.busy.hidden = true;
    this.busy.setAttribute('aria-hidden', 'true');

    // Scratch canvases for the window approximation (see windowed()).
    this.srcCanvas = document.createElement('canvas');
    this.srcCtx = this.srcCanvas.getContext('2d', { willReadFrequently: true });
    this.lutCanvas = document.createElement('canvas');
    this.lutCtx = this.lutCanvas.getContext('2d');
    this.srcCache = { key: null, data: null };
    this.lutCache = { key: null };

    new ResizeObserver(() => this.resize()).observe(this.el);
    this.bindGestures();
  }

  resize() {
    const r = this.el.getBoundingClientRect();
    // Beyond 2 device pixels per CSS pixel a 512² slice gains nothing visible, and
    // every frame of a scroll costs a third more pixels at 3.
    this.dpr = Math.min(2, window.devicePixelRatio || 1);
    this.cssW = Math.max(1, r.width);
    this.cssH = Math.max(1, r.height);
    const w = Math.round(this.cssW * this.dpr);
    const h = Math.round(this.cssH * this.dpr);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      this.drawnKey = null;
    }
    this.draw();
  }

  setSeries(series, index = 0) {
    this.series = series;
    this.stack = series.stack;
    this.index = Math.max(0, Math.min(index, this.stack.length - 1));
    this.view.window = null;
    this.drawing = null;
    this.syncData();
    this.settle();
    this.invalidate();
  }

  get item() {
    return this.stack[this.index];
  }

  setIndex(i, { silent = false } = {}) {
    const n = this.stack.length;
    const next = Math.max(0, Math.min(n - 1, Math.round(i)));
    if (next === this.index) return;
    this.dir = next > this.index ? 1 : -1;
    this.index = next;
    this.syncData();
    this.settle();
    this.invalidate();
    this.viewer.indexChanged(this, silent);
  }

  step(d) {
    this.setIndex(this.index + d);
  }

  // The exact render waits until the patient stops on a slice; during a fast scroll
  // only previews from memory are drawn.
  settle() {
    this.settled = false;
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.settled = true;
      this.invalidate();
      this.viewer.settled(this);
    }, SETTLE_MS);
  }

  invalidate() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  matrix(view = this.view) {
    const it = this.item;
    return viewMatrix(view, this.cssW, this.cssH, it.cols, it.rows);
  }

  /** Whether the preview is too coarse for what the screen shows of this slice now. */
  wantsExact(it = this.item) {
    if (!it) return false;
    const [pw] = fitInside(it.cols, it.rows, this.viewer.previewPx);
    const { scale } = this.matrix();
    return this.view.zoom > 1.01 || scale * it.cols * this.dpr > pw * 1.01;
  }

  storedWindow(it = this.item) {
    return it?.view?.window || null;
  }

  /** The window on screen: the patient's, else the file's. */
  shownWindow() {
    return this.view.window || this.storedWindow();
  }

  /**
   * The best image in memory for slice `it`: a rendering in the wanted window first,
   * then the stored-window rendering (approximated to the window when one is set).
   */
  sourceFor(it) {
    const store = this.viewer.store;
    const keys = this.viewer.keys;
    const w = this.view.window;
    const cands = [];
    if (w) cands.push([keys.exact(it, w), w], [keys.preview(it, w), w]);
    cands.push([keys.exact(it), null], [keys.preview(it), null], [keys.scroll(it), null]);
    for (const [key, win] of cands) {
      const bmp = store.bitmap(key);
      if (bmp) return { bmp, key, win };
    }
    return null;
  }

  /** The current slice, else its nearest neighbour in memory, else the series thumbnail. */
  pickSource() {
    const it = this.item;
    const own = this.sourceFor(it);
    if (own) return { ...own, it, exactSlice: true };
    for (let d = 1; d < this.stack.length; d++) {
      for (const i of [this.index - d, this.index + d]) {
        const other = this.stack[i];
        if (!other) continue;
        const s = this.sourceFor(other);
        if (s) return { ...s, it: other, exactSlice: false };
      }
    }
    const thumb = this.viewer.thumbFor(it);
    if (thumb) return { bmp: thumb, key: `thumb:${it.inst.id}`, win: null, it, exactSlice: false };
    return null;
  }

  /**
   * Instant feedback while the window changes: the stored 8-bit rendering stretched
   * through a lookup table. Values the stored window clipped cannot come back; the
   * server's exact render replaces this once the finger lifts.
   */
  windowed(src, from, to) {
    const lutKey = `${src.key}|${to[0]},${to[1]}`;
    if (this.lutCache.key === lutKey) return this.lutCanvas;
    const w = src.bmp.width;
    const h = src.bmp.height;
    if (this.srcCache.key !== src.key) {
      this.srcCanvas.width = w;
      this.srcCanvas.height = h;
      this.srcCtx.drawImage(src.bmp, 0, 0);
      this.srcCache = { key: src.key, data: this.srcCtx.getImageData(0, 0, w, h) };
    }
    const lut = windowLut(from, to);
    const inData = this.srcCache.data.data;
    if (!this.outImage || this.outImage.width !== w || this.outImage.height !== h) {
      this.outImage = new ImageData(w, h);
    }
    const out = this.outImage.data;
    for (let i = 0; i < inData.length; i += 4) {
      out[i] = lut[inData[i]];
      out[i + 1] = lut[inData[i + 1]];
      out[i + 2] = lut[inData[i + 2]];
      out[i + 3] = 255;
    }
    this.lutCanvas.width = w;
    this.lutCanvas.height = h;
    this.lutCtx.putImageData(this.outImage, 0, 0);
    this.lutCache = { key: lutKey };
    return this.lutCanvas;
  }

  draw() {
    if (!this.item || !this.cssW) return;
    const src = this.pickSource();
    const it = this.item;
    const ctx = this.ctx;
    if (!src) {
      // Nothing of this series in memory yet: keep what is on screen, say why.
      this.busy.hidden = false;
      this.updateOverlay();
      return;
    }
    this.busy.hidden = src.exactSlice;
    const { m } = this.matrix();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    const dm = new DOMMatrix().scale(this.dpr, this.dpr).multiply(m);
    ctx.setTransform(dm);
    // No filtering while slices fly by (it costs most of a frame on a slow phone
    // without GPU canvas); the good one once the patient stops.
    ctx.imageSmoothingEnabled = this.settled;
    ctx.imageSmoothingQuality = 'high';
    let image = src.bmp;
    const stored = this.storedWindow(src.it);
    if (this.view.window && !src.win && stored) {
      image = this.windowed(src, stored, this.view.window);
    }
    ctx.drawImage(image, 0, 0, it.cols, it.rows);
    if (this.view.invert) {
      // White "difference" over the image inverts it on every browser (no ctx.filter
      // on Safari).
      ctx.globalCompositeOperation = 'difference';
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, it.cols, it.rows);
      ctx.globalCompositeOperation = 'source-over';
    }
    this.drawMeasures(m);
    this.drawnKey = src.key;
    this.el.dataset.drawnIndex = String(src.it.index + 1);
    this.viewer.drew(this);
    this.updateOverlay(m);
  }

  drawMeasures(m) {
    const lines = [...(this.measures.get(this.item.key) || [])];
    if (this.drawing) lines.push(this.drawing);
    if (!lines.length) return;
    const ctx = this.ctx;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.lineWidth = 2;
    ctx.font = '600 15px system-ui, sans-serif';
    ctx.textBaseline = 'bottom';
    for (const ln of lines) {
      const a = m.transformPoint(new DOMPoint(ln.a.x, ln.a.y));
      const b = m.transformPoint(new DOMPoint(ln.b.x, ln.b.y));
      ctx.strokeStyle = '#ffd24a';
      ctx.beginPath();
      ctx.moveTo(a.x, a.y);
      ctx.lineTo(b.x, b.y);
      ctx.stroke();
      for (const p of [a, b]) {
        ctx.beginPath();
        ctx.arc(p.x, p.y, 4, 0, Math.PI * 2);
        ctx.stroke();
      }
      const label = this.viewer.formatMm(ln.mm);
      const x = (a.x + b.x) / 2 + 8;
      const y = (a.y + b.y) / 2 - 6;
      ctx.lineWidth = 4;
      ctx.strokeStyle = '#000';
      ctx.strokeText(label, x, y);
      ctx.fillStyle = '#ffd24a';
      ctx.fillText(label, x, y);
      ctx.lineWidth = 2;
    }
  }

  updateOverlay(m = this.matrix().m) {
    const t = this.t;
    const v = this.viewer;
    const it = this.item;
    const s = this.series;
    setText(this.ov.tl, `${v.display.patient_name || ''}\n${v.display.study_date || ''}`);
    setText(this.ov.tr, `${t.series} ${s.number}${s.description ? `\n${s.description}` : ''}`);
    const bl = [`${this.counterText()}`];
    if (Math.abs(this.view.zoom - 1) > 0.005) bl.push(`${t.zoom} ${Math.round(this.view.zoom * 100)} %`);
    setText(this.ov.bl, bl.join('\n'));
    const w = this.shownWindow();
    const br = [];
    // The line being drawn, else the last one on this image.
    const lines = this.measures.get(it.key);
    const mm = this.drawing ? this.drawing.mm : lines?.[lines.length - 1]?.mm;
    if (mm != null) br.push(`${t.distance} ${v.formatMm(mm)}`);
    if (w && it.windowable) br.push(`C ${Math.round(w[0])}  W ${Math.round(w[1])}`);
    setText(this.ov.br, br.join('\n'));
    const edges = edgeLetters(it.view, m);
    for (const e of ['top', 'right', 'bottom', 'left']) setText(this.ov[e], edges ? edges[e] : '');
    const label = `${this.name ? `${this.name}: ` : ''}${t.series} ${s.number}${s.description ? ` ${s.description}` : ''}, ${this.counterText(true)}`;
    if (this.canvas.getAttribute('aria-label') !== label) {
      this.canvas.setAttribute('aria-label', label);
      this.el.setAttribute('aria-label', label);
    }
    this.syncData();
    this.el.dataset.shown = this.drawnKey || '';
  }

  // The pane's state as data attributes, at once (not at the next frame): for tests
  // and measurements that read it right after an input.
  syncData() {
    const w = this.shownWindow();
    const d = this.el.dataset;
    d.index = String(this.index + 1);
    d.total = String(this.stack.length);
    d.zoom = this.view.zoom.toFixed(3);
    d.window = w ? `${Math.round(w[0])},${Math.round(w[1])}` : '';
  }

  counterText(long = false) {
    const t = this.t;
    const word = this.series.cine ? t.frame : t.image;
    return long
      ? `${word} ${this.index + 1} ${t.of} ${this.stack.length}`
      : `${word} ${this.index + 1}/${this.stack.length}`;
  }

  showMessage(text) {
    this.msg.textContent = text;
    this.msg.hidden = false;
    clearTimeout(this.msgTimer);
    this.msgTimer = setTimeout(() => { this.msg.hidden = true; }, 3500);
    this.viewer.announce(text);
  }

  // ---- view changes ------------------------------------------------------------

  /** Zoom by `factor` keeping the image point under (x, y) where it is. */
  zoomAt(factor, x = this.cssW / 2, y = this.cssH / 2) {
    const p = this.matrix().m.inverse().transformPoint(new DOMPoint(x, y));
    this.view.zoom = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, this.view.zoom * factor));
    this.placePoint(p, x, y);
  }

  /** Pan so that image point p lands on screen point (x, y) at the current zoom. */
  placePoint(p, x, y) {
    const m0 = this.matrix({ ...this.view, panX: 0, panY: 0 }).m;
    const q = m0.transformPoint(p);
    this.view.panX = x - q.x;
    this.view.panY = y - q.y;
    this.afterViewChange();
  }

  rotate() {
    const { panX, panY } = this.view;
    this.view.rotation = (this.view.rotation + 90) % 360;
    this.view.panX = -panY;
    this.view.panY = panX;
    this.afterViewChange();
  }

  flip() {
    this.view.flipH = !this.view.flipH;
    this.view.panX = -this.view.panX;
    this.afterViewChange();
  }

  reset() {
    this.view = freshView();
    this.measures.clear();
    this.drawing = null;
    this.afterViewChange();
  }

  afterViewChange() {
    this.syncData();
    this.invalidate();
    this.viewer.viewChanged(this);
  }

  // ---- gestures ----------------------------------------------------------------

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  imagePoint(p) {
    const q = this.matrix().m.inverse().transformPoint(new DOMPoint(p.x, p.y));
    return { x: q.x, y: q.y };
  }

  bindGestures() {
    const c = this.canvas;
    c.addEventListener('pointerdown', (e) => this.down(e));
    c.addEventListener('pointermove', (e) => this.move(e));
    c.addEventListener('pointerup', (e) => this.up(e));
    c.addEventListener('pointercancel', (e) => this.up(e, true));
    c.addEventListener('contextmenu', (e) => e.preventDefault());
    c.addEventListener('wheel', (e) => this.wheel(e), { passive: false });
    // Safari's own pinch gestures would zoom the whole page.
    c.addEventListener('gesturestart', (e) => e.preventDefault());
    this.el.addEventListener('focus', () => this.viewer.activate(this));
  }

  down(e) {
    this.viewer.activate(this);
    // The shortcut keys then work right after touching or clicking the image.
    if (document.activeElement !== this.el) this.el.focus({ preventScroll: true });
    if (e.pointerType === 'mouse' && e.button > 2) return;
    e.preventDefault();
    capturePointer(this.canvas, e.pointerId);
    this.pointers.set(e.pointerId, this.point(e));
    if (this.pointers.size === 2) {
      this.cancelSingle();
      this.startPinch();
    } else if (this.pointers.size === 1) {
      let tool = this.viewer.tool;
      if (e.pointerType === 'mouse' && e.button === 1) tool = 'pan';
      if (e.pointerType === 'mouse' && e.button === 2) tool = 'window';
      this.startSingle(tool, this.point(e), e.pointerType);
    }
  }

  startSingle(tool, p, pointerType) {
    const it = this.item;
    if (tool === 'scroll' && this.stack.length <= 1) tool = 'pan';
    if (tool === 'window' && !it.windowable) {
      this.showMessage(this.t.noWindow);
      tool = 'none';
    }
    if (tool === 'measure' && !it.view.pixel_spacing) {
      this.showMessage(this.t.noSpacing);
      tool = 'none';
    }
    const g = { tool, start: p, last: p, pointerType };
    if (tool === 'scroll') {
      g.index = this.index;
      g.stepPx = Math.max(3, Math.min(20, this.cssH / this.stack.length));
    } else if (tool === 'window') {
      g.win = [...this.shownWindow()];
      g.k = Math.max(1, g.win[1]) / 200;
    } else if (tool === 'measure') {
      const a = this.imagePoint(p);
      this.drawing = { a, b: a, mm: 0 };
    }
    this.gesture = g;
  }

  cancelSingle() {
    if (this.gesture?.tool === 'measure') this.drawing = null;
    if (this.gesture?.tool === 'window') this.viewer.windowCommitted(this);
    this.gesture = null;
    this.invalidate();
  }

  startPinch() {
    const [a, b] = [...this.pointers.values()];
    const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
    this.gesture = {
      tool: 'pinch',
      dist: Math.max(10, Math.hypot(a.x - b.x, a.y - b.y)),
      zoom: this.view.zoom,
      anchor: this.imagePoint(mid),
    };
  }

  move(e) {
    if (!this.pointers.has(e.pointerId)) return;
    e.preventDefault();
    const p = this.point(e);
    this.pointers.set(e.pointerId, p);
    const g = this.gesture;
    if (!g) return;
    if (g.tool === 'pinch') {
      if (this.pointers.size < 2) return;
      const [a, b] = [...this.pointers.values()];
      const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      const dist = Math.max(10, Math.hypot(a.x - b.x, a.y - b.y));
      // Scale and pan in one step: the image point that was under the fingers' centre
      // stays under it, so pinching and moving never fight.
      this.view.zoom = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, (g.zoom * dist) / g.dist));
      this.placePoint(g.anchor, mid.x, mid.y);
      return;
    }
    const dx = p.x - g.last.x;
    const dy = p.y - g.last.y;
    g.last = p;
    if (g.tool === 'pan') {
      this.view.panX += dx;
      this.view.panY += dy;
      this.afterViewChange();
    } else if (g.tool === 'scroll') {
      // A finger pushes the stack like a page (up = further); a mouse drags down = further.
      const sign = g.pointerType === 'mouse' ? 1 : -1;
      const moved = (sign * (p.y - g.start.y)) / g.stepPx;
      this.setIndex(g.index + Math.trunc(moved));
    } else if (g.tool === 'window') {
      const tx = p.x - g.start.x;
      const ty = p.y - g.start.y;
      this.view.window = [g.win[0] + ty * g.k, Math.max(1, g.win[1] + tx * g.k)];
      this.settled = false;
      this.afterViewChange();
    } else if (g.tool === 'measure') {
      const b = this.imagePoint(p);
      this.drawing.b = b;
      this.drawing.mm = distanceMm(this.drawing.a, b, this.item.view.pixel_spacing);
      this.invalidate();
    }
  }

  up(e, cancelled = false) {
    if (!this.pointers.has(e.pointerId)) return;
    this.pointers.delete(e.pointerId);
    const g = this.gesture;
    if (this.pointers.size > 0) {
      // One finger of a pinch lifted: wait for the other instead of jumping into a drag.
      return;
    }
    this.gesture = null;
    if (!g) return;
    if (g.tool === 'window') {
      this.viewer.windowCommitted(this);
    } else if (g.tool === 'measure' && this.drawing) {
      const d = this.drawing;
      this.drawing = null;
      const m = this.matrix().m;
      const a = m.transformPoint(new DOMPoint(d.a.x, d.a.y));
      const b = m.transformPoint(new DOMPoint(d.b.x, d.b.y));
      if (!cancelled && Math.hypot(a.x - b.x, a.y - b.y) >= 4) {
        const list = this.measures.get(this.item.key) || [];
        list.push(d);
        this.measures.set(this.item.key, list);
        this.viewer.announce(`${this.t.distance} ${this.viewer.formatMm(d.mm)}`);
      }
      this.invalidate();
    }
  }

  wheel(e) {
    e.preventDefault();
    this.viewer.activate(this);
    const unit = e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? this.cssH : 1;
    if (e.ctrlKey) {
      // Trackpad pinch (and ctrl + wheel): zoom about the pointer.
      const p = this.point(e);
      this.zoomAt(Math.exp((-e.deltaY * unit) / 300), p.x, p.y);
      return;
    }
    this.wheelAcc = (this.wheelAcc || 0) + e.deltaY * unit;
    // One notch of a mouse wheel (about 100) is one slice; trackpads add up.
    const steps = Math.trunc(this.wheelAcc / 50);
    if (steps) {
      this.wheelAcc -= steps * 50;
      this.step(Math.sign(steps) * Math.max(1, Math.round(Math.abs(steps) / 2)));
    }
  }
}

function capturePointer(canvas, id) {
  try {
    canvas.setPointerCapture(id);
  } catch (_) {
    // A synthetic or already released pointer cannot be captured; the drag still works.
  }
}
