// Charts drawn with Observable Plot (bundled at build time; nothing is fetched at run time).

import * as Plot from "@observablehq/plot";
import { h } from "./dom.js";

// With a legend Plot returns a <figure> holding the legend and the chart: the whole figure carries
// the text alternative, so a screen reader meets one described chart, not an unnamed legend.
function chart(label, options) {
  const plot = Plot.plot({ ...options, ariaLabel: label });
  plot.setAttribute("aria-label", label);
  // Plot names each mark's group ("rule", "dot"): ARIA forbids a name on a group without a role,
  // and the chart as a whole is what carries the description.
  for (const group of plot.querySelectorAll("g[aria-label]")) group.removeAttribute("aria-label");
  return plot;
}

// Nulls and distinct values are counts of different sizes: each on its own scale (on one, a
// column's few nulls read as none beside another's thousands of distinct values).
export function nullsAndDistinct(profile) {
  const columns = Object.entries(profile.columns);
  const bars = (measure, key) => chart(`${measure} per column`, {
    marginLeft: 130, marginRight: 30, width: 340, height: 50 + 22 * columns.length, x: { grid: true, label: measure, nice: true },
    y: { label: null }, marks: [Plot.barX(columns.map(([column, figures]) => ({ column, value: figures[key] ?? 0 })), { x: "value", y: "column", tip: true }), Plot.ruleX([0])],
  });
  return h("div", { class: "charts" }, bars("Nulls", "nulls"), bars("Distinct values (estimate)", "distinct_estimate"));
}

// Rows of each version the caller may see the figures of, over the time each was published.
export function rowsOverVersions(versions) {
  const data = versions.filter((v) => v.rows !== null && v.rows !== undefined).map((v) => ({ version: `v${v.version}`, rows: v.rows, at: new Date(v.created_at) }));
  if (!data.length) return h("p", { class: "muted" }, "No version's row count is yours to see (your grant shares groups, or a part of the rows).");
  return chart("Rows per version over time", {
    height: 200, marginLeft: 70, x: { type: "time", label: "published" }, y: { grid: true, label: "rows", zero: true },
    marks: [Plot.lineY(data, { x: "at", y: "rows" }), Plot.dot(data, { x: "at", y: "rows", tip: true, title: (d) => `${d.version}: ${d.rows.toLocaleString()} rows` })],
  });
}

// Each alert's value over its window, a colour per group (with its legend), and the rule's threshold
// as a labelled line (not an axis tick).
export function alertsTimeline(alerts) {
  const data = alerts.map((a) => ({ at: new Date(a.window_start || a.raised_at), value: a.value, threshold: a.threshold, group: a.group ? Object.values(a.group).join(" · ") : "all" }));
  const thresholds = [...new Set(data.map((d) => d.threshold))].map((threshold) => ({ threshold, at: data[0].at }));
  return chart("Alerts raised over time: each alert's value in its window, by group, against the threshold", {
    height: 240, marginRight: 90, x: { type: "time", label: "window" }, y: { grid: true, label: "value" }, color: { legend: true, label: "group" },
    marks: [
      Plot.ruleY(thresholds, { y: "threshold", stroke: "#b3261e", strokeDasharray: "4,3" }),
      Plot.text(thresholds, { y: "threshold", text: (d) => `threshold ${d.threshold}`, frameAnchor: "right", dx: 88, fill: "#b3261e" }),
      Plot.dot(data, { x: "at", y: "value", stroke: "group", tip: true }),
    ],
  });
}

export function readsOverTime(entries) {
  const data = entries.filter((e) => e.action === "ReadData").map((e) => ({ at: new Date(e.at), who: e.actor_department, decision: e.decision }));
  return chart("Reads of the department's data over time, by department", {
    height: 220, x: { label: "time" }, y: { grid: true, label: "reads" }, color: { legend: true },
    marks: [Plot.rectY(data, Plot.binX({ y: "count" }, { x: "at", fill: "who", interval: "minute" })), Plot.ruleY([0])],
  });
}

// One small chart per column with a histogram in the profile (numbers and date-times without
// personal data): rows per equal-width bin from its low to its high value.
export function distributions(profile) {
  return Object.entries(profile.columns)
    .filter(([, figures]) => figures.histogram)
    .map(([column, { histogram }]) => {
      const time = typeof histogram.low === "string";
      const low = time ? Date.parse(histogram.low) : histogram.low;
      const width = ((time ? Date.parse(histogram.high) : histogram.high) - low) / histogram.counts.length;
      const edge = (i) => (time ? new Date(low + i * width) : low + i * width);
      const data = histogram.counts.map((rows, i) => ({ from: edge(i), to: edge(i + 1), rows }));
      return chart(`Distribution of ${column}: rows in ${histogram.counts.length} bins from ${histogram.low} to ${histogram.high}`, {
        height: 150, width: 340, marginLeft: 55, x: { label: column }, y: { grid: true, label: "rows" },
        marks: [Plot.rectY(data, { x1: "from", x2: "to", y: "rows", tip: true }), Plot.ruleY([0])],
      });
    });
}
