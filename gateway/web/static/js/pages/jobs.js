// Jobs: newest first, filtered by state and kind (kept in the URL), refreshed while any is unfinished;
// Cancel on a queued, retrying or running job (a queued one never runs, a running one stops at its next stage).
import { get, post, query } from "../api.js";
import { h, notice, when } from "../dom.js";

const REFRESH_MS = 2000;
const CANCELLABLE = new Set(["queued", "retrying", "running"]);
const STATES = ["", "queued", "running", "retrying", "done", "failed", "cancelled"];

function filters(params) {
  const select = (name, values, any) => h("select", { name, "aria-label": name }, values.map((v) =>
    h("option", { value: v, selected: (params.get(name) || "") === v }, v || any)));
  const el = h("form", { class: "search", id: "jobs-form" },
    select("state", STATES, "any state"), select("kind", ["", "ingest", "cluster"], "any kind"),
    h("button", { type: "submit" }, "Show"));
  el.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/jobs?${query(Object.fromEntries(new FormData(el)))}`;
  });
  return el;
}

function row(job, cancel) {
  const progress = job.state === "running" ? ` ${Math.round(job.progress * 100)}%` : "";
  return h("tr", { dataset: { job: job.id, state: job.state } },
    h("td", {}, when(job.created_at)),
    h("td", {}, job.kind),
    h("td", {}, job.media_id ? h("a", { href: `#/item/${encodeURIComponent(job.media_id)}` }, job.media_id.slice(0, 8)) : "–"),
    h("td", {}, h("span", { class: `badge ${job.state}` }, job.state), progress),
    h("td", {}, job.stage || "", job.error && h("span", { class: "error-text" }, ` ${job.error}`)),
    h("td", { class: "num" }, `${job.attempts}/${job.max_attempts}`),
    h("td", {}, CANCELLABLE.has(job.state) &&
      h("button", { type: "button", "data-action": "cancel", onclick: (e) => cancel(job, e.currentTarget) }, "Cancel")));
}

export function render(root, { params }) {
  const status = h("div");
  const body = h("tbody");
  const total = h("span", { class: "muted", id: "jobs-total" });
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Jobs"), total), filters(params), status,
    h("table", { class: "grid-table", id: "jobs" },
      h("thead", {}, h("tr", {}, ["Created", "Kind", "Item", "State", "Stage", "Attempts", ""].map((t) => h("th", {}, t)))),
      body));
  let timer = null, stopped = false;

  async function cancel(job, button) {
    button.disabled = true;
    try {
      const cancelled = await post(`/v1/jobs/${encodeURIComponent(job.id)}/cancel`);
      body.querySelector(`tr[data-job="${job.id}"]`)?.replaceWith(row(cancelled, cancel));
    } catch (error) {
      status.replaceChildren(notice(error.message));
      button.disabled = false;
      refresh();
    }
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const answer = await get(`/v1/jobs?${query({ state: params.get("state"), kind: params.get("kind"), limit: 100 })}`);
      if (stopped) return;
      body.replaceChildren(...answer.items.map((job) => row(job, cancel)));
      total.textContent = `${answer.total} job${answer.total === 1 ? "" : "s"}`;
      status.replaceChildren(...(answer.items.length ? [] : [notice("No jobs.", "info")]));
      if (answer.items.some((job) => CANCELLABLE.has(job.state))) timer = setTimeout(refresh, REFRESH_MS);
    } catch (error) {
      status.replaceChildren(notice(error.message));
    }
  }

  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
