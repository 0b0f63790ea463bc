// Keeps the patient session tied to this tab: a per-tab nonce (sessionStorage, not
// patient data) goes with every heartbeat; closing the tab sends a beacon and the
// server ends the session within seconds unless the same tab comes back (a reload).
// The server decides every timeout; this page only reports input and warns a minute
// before the idle end.
const root = document.getElementById('viewer');
// Right after the password the viewer arrives as the answer to the form (one round
// trip less); give it its own address so a reload asks for /view, not the form again.
if (root && window.location.pathname !== '/view') {
  window.history.replaceState(null, '', '/view');
}
const heartbeatUrl = root ? root.dataset.heartbeat : null;
const HEARTBEAT_S = 60;
const WARN_S = 60;
const warning = document.getElementById('idle-warning');
const countdown = document.getElementById('idle-seconds');
let sawInput = false;
let beatTimer = null;
let countdownTimer = null;

function tabNonce() {
  let nonce = sessionStorage.getItem('lk-tab');
  if (!nonce) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    nonce = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    sessionStorage.setItem('lk-tab', nonce);
  }
  return nonce;
}

// Nothing of the study may stay on screen once the server has ended the session.
function ended() {
  document.body.replaceChildren();
  window.location.replace('/access?ended=1');
}

function showWarning(secondsLeft) {
  if (!warning) return;
  let left = secondsLeft;
  warning.hidden = false;
  if (countdown) countdown.textContent = String(left);
  clearInterval(countdownTimer);
  countdownTimer = setInterval(() => {
    left = Math.max(0, left - 1);
    if (countdown) countdown.textContent = String(left);
  }, 1000);
}

function hideWarning() {
  if (warning) warning.hidden = true;
  clearInterval(countdownTimer);
}

async function heartbeat() {
  clearTimeout(beatTimer);
  const active = sawInput;
  sawInput = false;
  let next = HEARTBEAT_S;
  try {
    const res = await fetch(heartbeatUrl, {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'X-Tab': tabNonce(), 'X-Active': active ? '1' : '0' },
    });
    if (res.status === 401) {
      ended();
      return;
    }
    if (res.ok) {
      const { seconds_left: left } = await res.json();
      if (left <= WARN_S) {
        showWarning(left);
        next = left + 1;
      } else {
        hideWarning();
        next = Math.min(HEARTBEAT_S, left - WARN_S);
      }
    }
  } catch (_) {
    // Offline for a moment: the next beat tries again.
  }
  beatTimer = setTimeout(heartbeat, Math.max(1, next) * 1000);
}

if (heartbeatUrl) {
  // Things only a person does. Not 'scroll': the page also scrolls by itself (a
  // focused control, images arriving), which must not keep an idle session alive;
  // a person scrolling touches, clicks, turns the wheel or presses a key.
  for (const type of ['pointerdown', 'keydown', 'wheel', 'touchstart']) {
    window.addEventListener(type, () => { sawInput = true; }, { passive: true, capture: true });
  }
  document.getElementById('stay')?.addEventListener('click', () => {
    sawInput = true;
    heartbeat();
  });
  heartbeat();
  window.addEventListener('pagehide', (e) => {
    if (!e.persisted) navigator.sendBeacon('/view/api/leave', tabNonce());
  });
  // Back/forward cache: a page restored from memory must ask the server first.
  window.addEventListener('pageshow', (e) => {
    if (e.persisted) heartbeat();
  });
}
