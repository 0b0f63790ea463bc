// Keeps every image the viewer has fetched for the life of the page: the server
// answers no-store, so the browser would fetch again what is not held here. The
// compressed file (a Blob, a few dozen KB) stays for good; the decoded ImageBitmap,
// which is what scrolling draws from, is kept within a memory budget, the images
// nearest to what is on screen first, and decoded again when the patient comes back.
//
// Requests go out a few at a time, always the most wanted one next: the planner
// function (from the viewer) names it each time a slot frees up.

const MAX_ACTIVE = 6;
const MAX_DECODES = 3;

export class ImageStore {
  constructor({ onReady, budgetBytes }) {
    this.entries = new Map();
    this.onReady = onReady;
    this.budget = budgetBytes;
    this.decodedBytes = 0;
    this.active = 0;
    this.decoding = 0;
    this.decodeQueue = [];
    this.planner = () => null;
    // Lower is more important; the viewer says how far a key is from the screen.
    this.rank = () => 0;
  }

  entry(key) {
    return this.entries.get(key);
  }

  /** True once the file is here (decoded or not). */
  has(key) {
    const e = this.entries.get(key);
    return !!e && (e.state === 'ok');
  }

  /** Fetching, fetched or failed for good: the planner need not ask for it again. */
  known(key) {
    const e = this.entries.get(key);
    return !!e && (e.state !== 'error' || e.tries >= 2);
  }

  /** The decoded image if it is in memory; otherwise starts decoding and returns null. */
  bitmap(key) {
    const e = this.entries.get(key);
    if (!e || e.state !== 'ok') return null;
    if (e.bitmap) return e.bitmap;
    this.decode(e);
    return null;
  }

  /** Decodes these keys ahead of need (the slices next to the current one). */
  warm(keys) {
    for (const k of keys) {
      const e = this.entries.get(k);
      if (e && e.state === 'ok' && !e.bitmap) this.decode(e);
    }
  }

  /** An image the page already has (the server-rendered first image): no second download. */
  adopt(key, img) {
    const e = { key, state: 'ok', source: img, bitmap: null, bytes: 0, tries: 0 };
    this.entries.set(key, e);
    this.decode(e);
    return e;
  }

  loadedCount(keys) {
    let n = 0;
    for (const k of keys) if (this.has(k)) n++;
    return n;
  }

  pump() {
    while (this.active < MAX_ACTIVE) {
      const task = this.planner();
      if (!task) return;
      if (task.keys) this.fetchStack(task.keys, task.url);
      else this.fetch(task.key, task.url);
    }
  }

  /**
   * Many small images in one request (the server's stack answer: each a 4-byte
   * big-endian length, then a JPEG). On a phone far from the server the round trip,
   * not the bytes, is what costs; one answer per 50 slices instead of 50 answers.
   * Each image is usable as soon as its bytes are in.
   */
  async fetchStack(keys, url) {
    const mine = [];
    for (const key of keys) {
      let e = this.entries.get(key);
      if (e && (e.state === 'ok' || e.state === 'loading')) continue;
      if (!e) {
        e = { key, state: 'idle', source: null, bitmap: null, bytes: 0, tries: 0 };
        this.entries.set(key, e);
      }
      e.state = 'loading';
      e.tries++;
      mine.push(e);
    }
    if (!mine.length) return;
    this.active++;
    let next = 0;
    try {
      const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      const reader = res.body.getReader();
      let buf = new Uint8Array(0);
      for (;;) {
        const { done, value } = await reader.read();
        if (value) {
          const joined = new Uint8Array(buf.length + value.length);
          joined.set(buf);
          joined.set(value, buf.length);
          buf = joined;
        }
        while (buf.length >= 4 && next < keys.length) {
          const len = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0);
          if (buf.length < 4 + len) break;
          const e = this.entries.get(keys[next]);
          if (e && e.state === 'loading') {
            if (len > 0) {
              e.source = new Blob([buf.slice(4, 4 + len)], { type: 'image/jpeg' });
              e.state = 'ok';
              this.decode(e);
            } else {
              e.state = 'error';
            }
            this.onReady(e.key);
          }
          buf = buf.slice(4 + len);
          next++;
        }
        if (done) break;
      }
    } catch (_) {
      // Whatever did not arrive is asked for again later (by the planner).
    } finally {
      for (const e of mine) if (e.state === 'loading') e.state = 'error';
      this.active--;
      this.pump();
    }
  }

  /** Fetches one key now, outside the plan (e.g. the exact render after a drag). */
  async fetch(key, url) {
    let e = this.entries.get(key);
    if (e && (e.state === 'ok' || e.state === 'loading')) return;
    if (!e) {
      e = { key, state: 'idle', source: null, bitmap: null, bytes: 0, tries: 0 };
      this.entries.set(key, e);
    }
    e.state = 'loading';
    e.tries++;
    this.active++;
    try {
      const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      e.source = await res.blob();
      e.state = 'ok';
      // Decoded right away: a fresh image is wanted on screen soon.
      e.decodePending = true;
      await this.decodeNow(e);
    } catch (_) {
      // A failed image is asked for once more later, then given up (the viewer shows
      // its neighbour); an ended session is noticed by the heartbeat, not here.
      e.state = 'error';
    } finally {
      this.active--;
      this.onReady(key);
      this.pump();
    }
  }

  decode(e) {
    if (e.decodePending) return;
    e.decodePending = true;
    this.decodeQueue.push(e);
    this.runDecodes();
  }

  runDecodes() {
    while (this.decoding < MAX_DECODES && this.decodeQueue.length) {
      const e = this.decodeQueue.shift();
      this.decoding++;
      this.decodeNow(e).finally(() => {
        this.decoding--;
        this.onReady(e.key);
        this.runDecodes();
      });
    }
  }

  async decodeNow(e) {
    try {
      if (!e.bitmap && e.source) {
        const src = e.source;
        if (src instanceof HTMLImageElement && !src.complete) await src.decode();
        e.bitmap = await createImageBitmap(src);
        e.bytes = e.bitmap.width * e.bitmap.height * 4;
        this.decodedBytes += e.bytes;
        this.evict(e);
      }
    } catch (_) {
      // An undecodable file counts as missing.
      if (!e.bitmap) e.state = 'error';
    } finally {
      e.decodePending = false;
    }
  }

  /** Frees decoded images furthest from the screen until the budget fits again. */
  evict(keep) {
    if (this.decodedBytes <= this.budget) return;
    // Each rank worked out once (not in the comparator): this runs while scrolling.
    const decoded = [];
    for (const x of this.entries.values()) {
      if (x.bitmap && x !== keep) decoded.push([this.rank(x.key), x]);
    }
    decoded.sort((a, b) => b[0] - a[0]);
    for (const [rank, x] of decoded) {
      if (this.decodedBytes <= this.budget * 0.9) break;
      if (rank <= 2) break;
      x.bitmap.close?.();
      x.bitmap = null;
      this.decodedBytes -= x.bytes;
    }
  }
}
