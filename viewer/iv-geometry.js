// Pure geometry for the image viewer: where the image sits on screen, which patient
// direction each screen edge faces, slice positions for synchronised scrolling,
// window arithmetic and distances. No DOM here, so it stays easy to reason about.

// The server's presets (src/dicom/render.rs window_preset): centre, width in HU.
export const PRESETS = {
  soft: [40, 400],
  lung: [-600, 1500],
  bone: [400, 1800],
  brain: [40, 80],
};

/** Size of a render that fits inside max×max and is never enlarged (the server's rule). */
export function fitInside(cols, rows, max) {
  const s = Math.min(1, max / cols, max / rows);
  return [Math.max(1, Math.round(cols * s)), Math.max(1, Math.round(rows * s))];
}

/**
 * Image space (columns × rows of the original image) to pane CSS pixels. Rotation is
 * applied first, then the horizontal flip in screen space, so "flip" always mirrors
 * what the patient sees left to right, whatever the rotation.
 */
export function viewMatrix(view, paneW, paneH, cols, rows) {
  const swap = view.rotation % 180 !== 0;
  const bw = swap ? rows : cols;
  const bh = swap ? cols : rows;
  const fit = Math.min(paneW / bw, paneH / bh);
  const s = fit * view.zoom;
  const m = new DOMMatrix()
    .translate(paneW / 2 + view.panX, paneH / 2 + view.panY)
    .scale(view.flipH ? -s : s, s)
    .rotate(view.rotation)
    .translate(-cols / 2, -rows / 2);
  return { m, fit, scale: s };
}

const AXES = [['L', 'R'], ['P', 'A'], ['H', 'F']];
const LETTER_VECTORS = {
  L: [1, 0, 0], R: [-1, 0, 0], P: [0, 1, 0], A: [0, -1, 0], H: [0, 0, 1], F: [0, 0, -1],
};

/** Patient-coordinate (LPS) vector to letters, strongest component first ("LP"). */
export function letters(v) {
  const parts = v
    .map((x, i) => ({ a: Math.abs(x), l: x > 0 ? AXES[i][0] : AXES[i][1] }))
    .filter((p) => p.a > 0.25)
    .sort((a, b) => b.a - a.a);
  return parts.map((p) => p.l).join('');
}

function letterVector(s) {
  const v = [0, 0, 0];
  for (const ch of String(s).toUpperCase()) {
    const u = LETTER_VECTORS[ch];
    if (u) for (let i = 0; i < 3; i++) v[i] += u[i];
  }
  return v;
}

/**
 * The patient directions of the image's row (rightwards) and column (downwards) axes,
 * from ImageOrientationPatient, else from PatientOrientation of projection images.
 */
export function imageAxes(view) {
  if (Array.isArray(view?.orientation) && view.orientation.length === 6) {
    return [view.orientation.slice(0, 3), view.orientation.slice(3, 6)];
  }
  if (Array.isArray(view?.patient_orientation) && view.patient_orientation.length === 2) {
    const r = letterVector(view.patient_orientation[0]);
    const c = letterVector(view.patient_orientation[1]);
    if (r.some((x) => x) && c.some((x) => x)) return [r, c];
  }
  return null;
}

/** Letters for the four screen edges, or null when the image carries no orientation. */
export function edgeLetters(view, m) {
  const axes = imageAxes(view);
  if (!axes) return null;
  const inv = m.inverse();
  const o = inv.transformPoint(new DOMPoint(0, 0));
  const toPatient = (sx, sy) => {
    const p = inv.transformPoint(new DOMPoint(sx, sy));
    const dx = p.x - o.x;
    const dy = p.y - o.y;
    return [0, 1, 2].map((i) => dx * axes[0][i] + dy * axes[1][i]);
  };
  const right = toPatient(1, 0);
  const down = toPatient(0, 1);
  const neg = (v) => v.map((x) => -x);
  return {
    right: letters(right), left: letters(neg(right)),
    bottom: letters(down), top: letters(neg(down)),
  };
}

export function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

export function dot(a, b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/** Slice normal of a cross-sectional image, or null. */
export function normalOf(view) {
  if (!Array.isArray(view?.orientation) || view.orientation.length !== 6) return null;
  const n = cross(view.orientation.slice(0, 3), view.orientation.slice(3, 6));
  const len = Math.hypot(...n);
  return len > 0.5 ? n.map((x) => x / len) : null;
}

/**
 * Index in `target` that matches `source[index]`: same position along the source's
 * slice normal when both stacks have geometry in parallel planes, else the same
 * fraction of the way through the stack.
 */
export function syncIndex(source, index, target) {
  if (target.length <= 1) return 0;
  const s = source[index];
  const n = s && normalOf(s.view);
  if (n && s.view.position && target.every((t) => t.view.position && normalOf(t.view))) {
    const tn = normalOf(target[0].view);
    if (Math.abs(dot(n, tn)) > 0.9) {
      const want = dot(s.view.position, n);
      let best = 0;
      let bestD = Infinity;
      target.forEach((t, i) => {
        const d = Math.abs(dot(t.view.position, n) - want);
        if (d < bestD) { bestD = d; best = i; }
      });
      return best;
    }
  }
  const f = source.length > 1 ? index / (source.length - 1) : 0;
  return Math.round(f * (target.length - 1));
}

/**
 * A 256-entry table that turns a rendering made with window `from` into an
 * approximation of one made with window `to` (both [centre, width]). Exact where the
 * stored rendering was not clipped; the server's exact render replaces it on release.
 */
export function windowLut(from, to) {
  const lut = new Uint8ClampedArray(256);
  const lo0 = from[0] - from[1] / 2;
  const lo1 = to[0] - to[1] / 2;
  for (let p = 0; p < 256; p++) {
    const v = lo0 + (p / 255) * from[1];
    lut[p] = Math.round(((v - lo1) / to[1]) * 255);
  }
  return lut;
}

/** Length in mm of a line in image pixels, with PixelSpacing [row mm, column mm]. */
export function distanceMm(a, b, spacing) {
  const dx = (b.x - a.x) * spacing[1];
  const dy = (b.y - a.y) * spacing[0];
  return Math.hypot(dx, dy);
}
