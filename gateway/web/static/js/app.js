// The shell: hash routes (#/search, #/upload, #/item/ID, #/jobs, #/models, #/health), the nav, the API-key prompt.
import { releaseMedia, setKey } from "./api.js";
import * as health from "./pages/health.js";
import * as item from "./pages/item.js";
import * as jobs from "./pages/jobs.js";
import * as models from "./pages/models.js";
import * as search from "./pages/search.js";
import * as upload from "./pages/upload.js";

const PAGES = { search, upload, item, jobs, models, health };
const root = document.getElementById("page");
let cleanup = null;

function route() {
  const [path, queryString = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/");
  return { page: PAGES[name] ? name : "search", arg: rest.map(decodeURIComponent).join("/"),
    params: new URLSearchParams(queryString) };
}

function show() {
  if (cleanup) cleanup();
  releaseMedia();
  const { page, arg, params } = route();
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === `#/${page}`);
  }
  root.replaceChildren();
  root.dataset.page = page;
  document.title = `mediamesh · ${page}`;
  cleanup = PAGES[page].render(root, { arg, params }) || null;
}

const dialog = document.getElementById("key-dialog");
window.addEventListener("mm:need-key", () => { if (!dialog.open) dialog.showModal(); });
document.getElementById("key-form").addEventListener("submit", () => {
  const input = document.getElementById("key-input");
  setKey(input.value.trim());
  input.value = "";
  show();
});

window.addEventListener("hashchange", show);
show();
