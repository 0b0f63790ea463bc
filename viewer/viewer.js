// Keeps the patient session tied to this tab: a per-tab nonce (sessionStorage, not
// patient data) goes with every heartbeat; closing the tab sends a beacon and the
// server ends the session within seconds unless the same tab comes back (a reload).
const root = document.getElementById('viewer');
const heartbeatUrl = root ? root.dataset.heartbeat : null;
const HEARTBEAT_MS = 60_000;

function tabNonce() {
  let nonce = sessionStorage.getItem('lk-tab');
  if (!nonce) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    nonce = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    sessionStorage.setItem('lk-tab', nonce);
  }
  return nonce;
}

async function heartbeat() {
  try {
    const res = await fetch(heartbeatUrl, {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'X-Tab': tabNonce() },
    });
    if (res.status === 401) {
      window.location.replace('/access?ended=1');
    }
  } catch (_) {
    // Offline for a moment: the next beat tries again.
  }
}

if (heartbeatUrl) {
  heartbeat();
  setInterval(heartbeat, HEARTBEAT_MS);
  window.addEventListener('pagehide', () => {
    navigator.sendBeacon('/view/api/leave', tabNonce());
  });
}
