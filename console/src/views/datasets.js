// The catalog: search, and a dataset's page — schema (personal columns and their protection marked),
// versions with rows and rejections, the rejection report, the profile as charts, lineage as a graph
// of exact versions, alert rules and the alerts raised over time.

import { alertsTimeline, distributions, nullsAndDistinct, rowsOverVersions } from "../charts.js";
import { field, h, paged, put, say, table, when } from "../dom.js";

const CATALOG_PAGE = 50;

// The catalog a page at a time (one API call per page), searchable; Previous goes back through the
// cursors already seen.
export async function catalog(api, main) {
  const query = h("input", { type: "search", placeholder: "words in title, description or tags" });
  const results = h("div", {});
  const pages = paged("Pages of datasets", async (cursor, page) => {
    const answer = await api.get("/datasets", { q: query.value || undefined, limit: CATALOG_PAGE, cursor });
    const first = page * CATALOG_PAGE + 1;
    const caption = answer.datasets.length
      ? `Datasets you may see: ${first}–${first + answer.datasets.length - 1}${answer.next_cursor ? ", more on the next page" : ""}`
      : "No dataset you may see matches.";
    results.replaceChildren(table(
      ["dataset", "title", "owner", "classification", "tags"],
      answer.datasets.map((d) => [h("a", { href: `#/datasets/${d.dataset_id}` }, d.dataset_id), d.title, d.owner, d.classification, d.tags.join(", ")]),
      caption,
    ));
    return answer.next_cursor;
  });
  const search = (event) => { event?.preventDefault(); return pages.first(); };
  put(main, h("h1", {}, "Datasets"), h("form", { role: "search", onsubmit: (event) => search(event).catch((error) => say(`Not shown: ${error.message}`, "error")) }, field("Search", query), h("button", { type: "submit" }, "Search")), results, pages.nav);
  await search();
}

// Lineage as a graph you can walk: inputs on the left, this dataset in the middle, what is derived
// from it on the right; every other node is a link to its own page (and its own lineage).
function lineageGraph(lineage) {
  const rows = Math.max(lineage.upstream.length, lineage.downstream.length, 1);
  const height = 40 + rows * 40;
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attributes, ...children) => {
    const element = document.createElementNS(ns, tag);
    Object.entries(attributes).forEach(([k, v]) => element.setAttribute(k, v));
    element.append(...children);
    return element;
  };
  const svg = make("svg", { viewBox: `0 0 720 ${height}`, role: "group", "aria-label": `Lineage of ${lineage.dataset_id}: ${lineage.upstream.length} inputs, ${lineage.downstream.length} derived datasets`, class: "lineage" });
  const node = (x, y, label, datasetId) => {
    const box = make("g", {}, make("rect", { x: x - 100, y: y - 14, width: 200, height: 28, rx: 6, class: "node" }), make("text", { x, y: y + 5, "text-anchor": "middle" }, label));
    svg.append(datasetId ? make("a", { href: `#/datasets/${encodeURIComponent(datasetId)}`, "aria-label": `${label}: open its page` }, box) : box);
  };
  const edge = (x1, y1, x2, y2) => svg.append(make("line", { x1, y1, x2, y2, class: "edge", "aria-hidden": "true" }));
  const middle = height / 2;
  const at = (i, n) => (height / (n + 1)) * (i + 1);
  lineage.upstream.forEach((input, i) => { edge(210, at(i, lineage.upstream.length), 260, middle); node(110, at(i, lineage.upstream.length), `${input.dataset_id}@${input.version ?? "?"}`, input.dataset_id); });
  lineage.downstream.forEach((output, i) => { edge(460, middle, 510, at(i, lineage.downstream.length)); node(610, at(i, lineage.downstream.length), output.dataset_id, output.dataset_id); });
  node(360, middle, `${lineage.dataset_id}${lineage.version ? "@" + lineage.version : ""}`, null);
  if (!lineage.upstream.length && !lineage.downstream.length) return h("p", { class: "muted" }, "Published directly: not derived from other datasets, and nothing is derived from it yet.");
  return svg;
}

export async function datasetPage(api, main, datasetId, versionNumber) {
  const dataset = await api.get(`/datasets/${datasetId}`);
  const versions = (await api.get(`/datasets/${datasetId}/versions`)).versions;
  put(main, 
    h("h1", {}, dataset.title),
    h("p", {}, `${dataset.dataset_id} · ${dataset.owner} · ${dataset.classification} · ${dataset.tags.join(", ")}`),
    dataset.description ? h("p", {}, dataset.description) : null,
    h("h2", {}, "Schema"),
    table(["column", "type", "personal data", "required"], Object.entries(dataset.schema.properties).map(([name, column]) => [
      name,
      [].concat(column.type || "").join(" | ") + (column.format ? ` (${column.format})` : ""),
      column["x-personal"] ? h("strong", { class: "personal" }, `${column["x-personal"].protection} · ${column["x-personal"].category || ""}`) : "",
      (dataset.schema.required || []).includes(name) ? "yes" : "",
    ])),
    h("h2", {}, "Versions"),
  );
  if (!versions.length) put(main, h("p", {}, "No version published yet."));
  else {
    put(main, 
      table(["version", "published", "rows", "rejected", "what you see"], versions.map((v) => [
        h("a", { href: `#/datasets/${datasetId}/versions/${v.version}` }, `v${v.version}`), when(v.created_at), v.rows ?? "—", v.report ? v.report.rows_rejected : "—", v.access,
      ])),
      h("section", { "aria-label": "Rows per version" }, rowsOverVersions(versions)),
    );
    // `#/datasets/<id>/versions/<n>` shows version n; the dataset's own page, the latest.
    const latest = versionNumber ? versions.find((v) => v.version === versionNumber) : versions[0];
    if (!latest) {
      put(main, h("p", { class: "error" }, `No version ${versionNumber} of ${datasetId}: its versions are listed above.`));
    } else if (latest.profile) {
      put(main, h("h2", {}, `Profile of v${latest.version}`), nullsAndDistinct(latest.profile));
      const spreads = distributions(latest.profile);
      if (spreads.length) put(main, h("h3", {}, "Distributions (estimated from samples; none for personal data)"), h("div", { class: "charts" }, spreads));
    }
    if (latest && latest.report && latest.report.issues.length) {
      put(main, h("h2", {}, `Rejections of v${latest.version}`), table(["row", "column", "rule", "message", "value"],
        latest.report.issues.map((i) => [i.row ?? "", i.column ?? "", i.rule, i.message, i.value ?? ""])));
    }
  }
  try {
    put(main, h("h2", {}, "Lineage"), lineageGraph(await api.get(`/datasets/${datasetId}/lineage`)));
  } catch (error) {
    put(main, h("p", {}, `Lineage not shown: ${error.message}`));
  }
  try {
    const rules = (await api.get(`/datasets/${datasetId}/alert-rules`)).rules;
    put(main, h("h2", {}, "Alert rules"), rules.length
      ? table(["rule", "name", "by", "backtest (forecast rules)"], rules.map((r) => [r.rule_id, r.name, r.owner, backtestText(r.backtest)]))
      : h("p", {}, "None."));
    if (rules.length) {
      // Alerts carry values of the data, so reading them is audited as a read: fetched when asked
      // for, not each time the page opens (which made stewards readers of their own data).
      const area = h("div", {});
      const button = h("button", { onclick: async () => {
        button.disabled = true;
        try {
          const alerts = (await api.get(`/datasets/${datasetId}/alerts`)).alerts;
          area.replaceChildren(...(alerts.length ? [alertsTimeline(alerts)] : [h("p", {}, "No alert raised.")]));
        } catch (error) {
          say(`Alerts not shown: ${error.message}`, "error");
          button.disabled = false;
        }
      } }, "Show the alerts raised");
      put(main, h("h2", {}, "Alerts raised"), h("p", {}, button, " (reading them is audited as a read of the data)"), area);
    }
  } catch (error) {
    say(`Alert rules not shown: ${error.message}`, "info");
  }
}

// A forecast rule's backtest on the history, in words: what a steward weighs before trusting it.
function backtestText(backtest) {
  if (!backtest) return "—";
  const share = (value) => (value === null || value === undefined ? "—" : `${Math.round(value * 100)}%`);
  const lead = backtest.mean_lead_minutes === null || backtest.mean_lead_minutes === undefined
    ? "—" : `${(backtest.mean_lead_minutes / 60).toFixed(1)} h`;
  return `v${backtest.history_version}: ${backtest.hits} of ${backtest.events} crossings forecast ahead (${share(backtest.hit_rate)}, `
    + `mean lead ${lead}); ${backtest.false_alarms} of ${backtest.alarms} alarms false (${share(backtest.false_alarm_ratio)}); `
    + `MASE ${backtest.mase ?? "—"}`;
}
