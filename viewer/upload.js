// Staff upload: files, folders (also dropped ones) and ZIPs, one request per file so
// each gets its own progress and result, and neither side holds a whole study.
const zone = document.getElementById('dropzone');
const overall = document.getElementById('overall');
const results = document.getElementById('results');
const csrf = zone.dataset.csrf;
const endpoint = zone.dataset.endpoint;

function row(name) {
  const li = document.createElement('li');
  const label = document.createElement('span');
  label.textContent = name;
  const bar = document.createElement('progress');
  bar.max = 1;
  bar.value = 0;
  const status = document.createElement('span');
  status.className = 'status';
  li.append(label, bar, status);
  results.append(li);
  return { li, bar, status };
}

function send(file, ui) {
  return new Promise((resolve) => {
    const form = new FormData();
    form.append('file', file, file.webkitRelativePath || file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', endpoint);
    xhr.setRequestHeader('X-CSRF-Token', csrf);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) ui.bar.value = e.loaded / e.total; };
    xhr.onload = () => {
      ui.bar.value = 1;
      let text = '';
      try {
        const body = JSON.parse(xhr.responseText);
        if (body.error) {
          text = body.error.message;
          ui.li.classList.add('rejected');
        } else {
          const ok = body.studies.reduce((n, s) => n + s.accepted, 0);
          const dup = body.studies.reduce((n, s) => n + s.duplicates, 0);
          const bad = body.rejected.map((r) => `${r.file}: ${r.message}`);
          text = [ok ? `${ok} ✓` : '', dup ? `${dup} =` : '', ...bad].filter(Boolean).join(' · ');
          ui.li.classList.add(bad.length && !ok && !dup ? 'rejected' : 'accepted');
        }
      } catch (_) {
        text = `HTTP ${xhr.status}`;
        ui.li.classList.add('rejected');
      }
      ui.status.textContent = text;
      resolve();
    };
    xhr.onerror = () => { ui.status.textContent = 'network error'; ui.li.classList.add('rejected'); resolve(); };
    xhr.send(form);
  });
}

async function uploadAll(files) {
  // A DICOMDIR only indexes the media; the images are the other files.
  const list = [...files].filter((f) => f.name.toUpperCase() !== 'DICOMDIR');
  let done = 0;
  overall.max = list.length || 1;
  overall.value = 0;
  // A few at a time: fast on a LAN, gentle on the server.
  const queue = list.map((f) => ({ f, ui: row(f.webkitRelativePath || f.name) }));
  const workers = Array.from({ length: 3 }, async () => {
    while (queue.length) {
      const { f, ui } = queue.shift();
      await send(f, ui);
      overall.value = ++done;
    }
  });
  await Promise.all(workers);
}

async function entriesToFiles(entries) {
  const out = [];
  const walk = async (entry) => {
    if (entry.isFile) {
      out.push(await new Promise((res, rej) => entry.file(res, rej)));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      let batch;
      do {
        batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        for (const e of batch) await walk(e);
      } while (batch.length);
    }
  };
  for (const e of entries) await walk(e);
  return out;
}

zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', async (e) => {
  e.preventDefault();
  zone.classList.remove('over');
  const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  const files = entries.length ? await entriesToFiles(entries) : [...e.dataTransfer.files];
  uploadAll(files);
});
document.getElementById('files').addEventListener('change', (e) => uploadAll(e.target.files));
document.getElementById('folder').addEventListener('change', (e) => uploadAll(e.target.files));
