// PiCloud dashboard: drag-and-drop deploys with progress, the live tail, confirmations.
// No library; everything the server renders works without this script, except the
// tail and the progress bar.
"use strict";

function deployForm(form) {
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file");
  const status = document.getElementById("deploy-status");
  const progress = document.getElementById("progress");
  const say = (text, kind) => {
    status.textContent = text;
    status.className = kind || "";
  };
  ["dragenter", "dragover"].forEach((name) =>
    zone.addEventListener(name, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    }));
  ["dragleave", "drop"].forEach((name) =>
    zone.addEventListener(name, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (!e.dataTransfer.files.length) return;
    input.files = e.dataTransfer.files;
    send();
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  function send() {
    if (!input.files.length) {
      say("Choose a .wasm or .rhai file first.", "error");
      return;
    }
    const file = input.files[0];
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    progress.hidden = false;
    progress.value = 0;
    say("Uploading " + file.name + "…");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) progress.value = (100 * e.loaded) / e.total;
    };
    xhr.upload.onload = () => {
      progress.removeAttribute("value");
      say("Uploaded; compiling " + file.name + "…");
    };
    xhr.onerror = () => {
      progress.hidden = true;
      say("The upload failed: the server could not be reached.", "error");
    };
    xhr.onload = () => {
      progress.hidden = true;
      let answer;
      try {
        answer = JSON.parse(xhr.responseText);
      } catch (_) {
        answer = { ok: false, message: "The server answered " + xhr.status + "." };
      }
      if (answer.ok) {
        say(answer.message, "ok");
        const name = new FormData(form).get("name") || file.name.replace(/\.[^.]*$/, "").replace(/_/g, "-");
        setTimeout(() => { location.href = location.pathname + "?deployed=" + encodeURIComponent(name); }, 400);
      } else {
        say(answer.message, "error");
      }
    };
    xhr.send(new FormData(form));
  }
}

function fmtMicros(us) {
  if (us >= 1e6) return (us / 1e6).toFixed(2) + " s";
  if (us >= 1e3) return (us / 1e3).toFixed(1) + " ms";
  return us + " µs";
}

function tail(section) {
  const rows = document.getElementById("tail-rows");
  const table = document.getElementById("tail-table");
  const empty = document.getElementById("tail-empty");
  const state = document.getElementById("tail-state");
  const source = new EventSource(section.dataset.src);
  source.onopen = () => { state.textContent = "live"; state.className = "badge ok"; };
  source.onerror = () => { state.textContent = "reconnecting…"; state.className = "badge"; };
  source.addEventListener("invocation", (e) => {
    const r = JSON.parse(e.data);
    const tr = document.createElement("tr");
    tr.className = "status-" + r.status;
    tr.dataset.id = r.id;
    const cells = [
      new Date(r.started_at).toISOString().replace("T", " ").slice(0, 19) + " UTC",
      r.function + " v" + r.version,
      r.status,
      String(r.http_status),
      fmtMicros(r.duration_us),
      r.fuel_used.toLocaleString("en"),
      [r.error_code, r.error_message].filter(Boolean).join(" "),
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i >= 3 && i <= 5) td.className = "num";
      tr.appendChild(td);
    });
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > 100) rows.removeChild(rows.lastChild);
    table.hidden = false;
    empty.hidden = true;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("deploy-form");
  if (form) deployForm(form);
  const section = document.getElementById("tail");
  if (section) tail(section);
  document.querySelectorAll("form[data-confirm]").forEach((f) =>
    f.addEventListener("submit", (e) => {
      if (!confirm(f.dataset.confirm)) e.preventDefault();
    }));
});
