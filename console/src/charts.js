// Charts drawn with Observable Plot (bundled at build time; nothing is fetched at run time).

import * as Plot from "@observablehq/plot";

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

export function nullsAndDistinct(profile) {
  const data = Object.entries(profile.columns).flatMap(([column, figures]) => [
    { column, measure: "nulls", value: figures.nulls },
    { column, measure: "distinct (estimate)", value: figures.distinct_estimate },
  ]);
  return chart("Nulls and distinct values per column", {
    marginLeft: 130, marginRight: 30, height: 60 + 24 * Object.keys(profile.columns).length, x: { grid: true, label: null },
    y: { label: null }, fx: { label: null }, color: { legend: true },
    marks: [Plot.barX(data, { x: "value", y: "column", fill: "measure", fx: "measure", tip: true }), Plot.ruleX([0])],
  });
}

export function rowsOverVersions(versions) {
  const data = versions.filter((v) => v.rows !== null && v.rows !== undefined).map((v) => ({ version: v.version, rows: v.rows, at: new Date(v.created_at) }));
  return chart("Rows per version over time", {
    height: 200, marginLeft: 70, x: { label: "published" }, y: { grid: true, label: "rows", zero: true },
    marks: [Plot.lineY(data, { x: "at", y: "rows" }), Plot.dot(data, { x: "at", y: "rows", tip: true })],
  });
}

export function alertsTimeline(alerts) {
  const data = alerts.map((a) => ({ at: new Date(a.window_start || a.raised_at), value: a.value, threshold: a.threshold, group: a.group ? JSON.stringify(a.group) : "" }));
  return chart("Alerts raised over time", {
    height: 220, x: { label: "window" }, y: { grid: true, label: "value" },
    marks: [Plot.dot(data, { x: "at", y: "value", stroke: "group", tip: true }), Plot.ruleY(data.slice(0, 1), { y: "threshold", stroke: "red" })],
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
