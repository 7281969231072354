// Health: every service, Postgres and Redis, up or down with the last error; the overall state; live.
import { get } from "../api.js";
import { h, notice, when } from "../dom.js";

const REFRESH_MS = 2000;

const badge = (status) => h("span", { class: `badge ${status}` }, status);

function services(report) {
  return h("table", { class: "grid-table", id: "services" },
    h("thead", {}, h("tr", {}, ["Service", "Kind", "Status", "Model", "Last error", "Checked"].map((t) => h("th", {}, t)))),
    h("tbody", {}, report.services.map((s) => h("tr", { dataset: { name: s.name, status: s.status } },
      h("td", {}, s.name), h("td", {}, s.kind), h("td", {}, badge(s.status)), h("td", {}, s.model_state || "–"),
      h("td", { class: "error-text" }, s.error || ""), h("td", {}, when(s.checked_at))))));
}

function dependencies(report) {
  return h("table", { class: "grid-table", id: "dependencies" },
    h("thead", {}, h("tr", {}, ["Dependency", "Status", "Latency", "Last error"].map((t) => h("th", {}, t)))),
    h("tbody", {}, report.dependencies.map((d) => h("tr", { dataset: { name: d.name, status: d.status } },
      h("td", {}, d.name), h("td", {}, badge(d.status)),
      h("td", {}, d.latency_ms == null ? "–" : `${d.latency_ms.toFixed(1)} ms`),
      h("td", { class: "error-text" }, d.status === "down" ? d.detail || "" : "")))));
}

export function render(root) {
  const body = h("div");
  const refresh = h("button", { type: "button", onclick: () => load(true) }, "Check now");
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Health"), refresh), body);

  async function load(fresh = false) {
    try {
      const report = await get(`/v1/health${fresh ? "?fresh=true" : ""}`, { allow: [503] });
      body.replaceChildren(
        h("p", { class: "overall" }, "Overall: ", h("span", { id: "overall", class: `badge ${report.status}` }, report.status)),
        services(report), dependencies(report));
    } catch (error) {
      body.replaceChildren(notice(`The gateway did not answer: ${error.message}`));
    }
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}
