// Upload: drop many files or a folder; each file's job is followed live until done or failed.
import { get, post } from "../api.js";
import { bytes, h } from "../dom.js";

const POLL_MS = 500;
const PARALLEL = 2;
const uploads = []; // kept across visits to the page: the rows go on updating while elsewhere
const waiting = [];
let running = 0;

function progress(row, { state, text, fraction = 0 }) {
  row.el.dataset.state = state;
  row.state.textContent = text;
  row.bar.style.width = `${Math.round(fraction * 100)}%`;
}

async function follow(row, jobId) {
  for (;;) {
    const job = await get(`/v1/jobs/${encodeURIComponent(jobId)}`);
    const stage = job.stage ? ` · ${job.stage}` : "";
    if (job.state === "failed") return progress(row, { state: "failed", text: `failed: ${job.error || "no reason given"}` });
    if (job.state === "done") return progress(row, { state: "done", text: row.duplicate ? "done (duplicate)" : "done", fraction: 1 });
    progress(row, { state: job.state, text: `${job.state}${stage}`, fraction: job.progress });
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function send(row) {
  const form = new FormData();
  form.append("file", row.file, row.file.name);
  progress(row, { state: "uploading", text: "uploading" });
  const accepted = await post("/v1/media", { form });
  row.duplicate = accepted.duplicate;
  row.link.href = `#/item/${encodeURIComponent(accepted.media_id)}`;
  row.link.hidden = false;
  if (accepted.duplicate) row.note.replaceChildren(h("span", { class: "badge duplicate" }, "duplicate: already stored"));
  if (accepted.job_id) await follow(row, accepted.job_id);
  else progress(row, { state: "done", text: accepted.status, fraction: 1 });
}

async function pump() {
  while (running < PARALLEL && waiting.length) {
    const row = waiting.shift();
    running += 1;
    send(row).catch((error) => progress(row, { state: "failed", text: `refused: ${error.message}` }))
      .finally(() => { running -= 1; pump(); });
  }
}

function enqueue(files, list) {
  for (const file of files) {
    const row = { file, state: h("span", { class: "job-state" }, "waiting"), bar: h("div", { class: "fill" }) };
    row.link = h("a", { hidden: true }, "open");
    row.note = h("span", { class: "note" });
    row.el = h("li", { class: "upload", dataset: { name: file.name, state: "waiting" } },
      h("span", { class: "name" }, file.webkitRelativePath || file.name), h("span", { class: "size" }, bytes(file.size)),
      h("div", { class: "progress" }, row.bar), row.state, row.link, row.note);
    uploads.push(row);
    waiting.push(row);
    list.prepend(row.el);
  }
  pump();
}

// A dropped folder arrives as a directory entry: walk it for its files.
async function filesOf(entry) {
  if (entry.isFile) return [await new Promise((resolve, reject) => entry.file(resolve, reject))];
  const reader = entry.createReader();
  const files = [];
  for (let batch; (batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject))).length;) {
    for (const child of batch) files.push(...(await filesOf(child)));
  }
  return files;
}

export function render(root) {
  const list = h("ul", { class: "uploads", id: "uploads" }, uploads.map((row) => row.el).reverse());
  const pick = h("input", { type: "file", multiple: true, id: "file-input", onchange: (e) => enqueue(e.target.files, list) });
  const folder = h("input", { type: "file", webkitdirectory: true, id: "folder-input", onchange: (e) => enqueue(e.target.files, list) });
  const zone = h("div", { class: "dropzone", id: "upload-drop" },
    h("p", {}, "Drop files or a folder here"),
    h("p", { class: "choices" }, h("label", {}, "Choose files ", pick), h("label", {}, "Choose a folder ", folder)));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
    const files = entries.length ? (await Promise.all(entries.map(filesOf))).flat() : [...event.dataTransfer.files];
    enqueue(files, list);
  });
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Upload")), zone, list);
}
