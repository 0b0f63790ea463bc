// Keeps the patient session alive while this page is open. When the tab closes, the
// heartbeats stop and the server ends the session within its liveness window.
const root = document.getElementById('viewer');
const heartbeatUrl = root ? root.dataset.heartbeat : null;
const HEARTBEAT_MS = 60_000;

async function heartbeat() {
  try {
    const res = await fetch(heartbeatUrl, { method: 'POST', credentials: 'same-origin', cache: 'no-store' });
    if (res.status === 401) {
      window.location.replace('/access?ended=1');
    }
  } catch (_) {
    // Offline for a moment: the next beat tries again.
  }
}

if (heartbeatUrl) {
  setInterval(heartbeat, HEARTBEAT_MS);
}
