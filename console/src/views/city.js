// The city picture: the department's indicators per district on the city's map and over time, and
// its rules' alerts, built only from what its grants allow. One request (GET /city): each indicator
// is a derived dataset the platform keeps up to date, answered as a few numbers per district.

import * as Plot from "@observablehq/plot";
import { h, put, table } from "../dom.js";

const SVG = "http://www.w3.org/2000/svg";
const state = { indicator: null, district: null };

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

export function figure(value, unit) {
  if (value === null || value === undefined) return "–";
  const digits = Math.abs(value) >= 100 ? 0 : 1;
  return `${value.toLocaleString(undefined, { maximumFractionDigits: digits })}${unit ? ` ${unit}` : ""}`;
}

export function moment(text) {
  if (!text) return "";
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? text : at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// Whether a value is past the indicator's limit (above it when lower is better, below otherwise).
function pastLimit(indicator, value) {
  if (indicator.limit === null || indicator.limit === undefined || value === null || value === undefined) return false;
  return indicator.better === "lower" ? value > indicator.limit : value < indicator.limit;
}

function colours(indicator) {
  const values = Object.values(indicator.districts);
  const domain = values.length ? [Math.min(...values), Math.max(...values)] : [0, 1];
  if (domain[0] === domain[1]) domain[1] = domain[0] + 1;
  // Worse is darker: reds where lower is better, blues reversed where higher is better.
  return Plot.scale({ color: { type: "linear", domain, scheme: indicator.better === "lower" ? "oranges" : "blues", reverse: indicator.better !== "lower", label: `${indicator.title}${indicator.unit ? ` (${indicator.unit})` : ""}` } });
}

// A tile's series as a small line (drawn by hand: six Plot charts cost more than the whole page),
// with its range, its first and last times, and the limit as a dashed line.
function sparkline(indicator) {
  // A time that is not a date (an hour number, a week) is drawn in its order.
  const parsed = indicator.series.map((point) => Date.parse(point.at));
  const dated = parsed.every((at) => !Number.isNaN(at));
  const points = indicator.series.map((point, i) => [dated ? parsed[i] : i, point.value]);
  if (points.length < 2) return h("p", { class: "muted" }, points.length ? "One point so far" : "No series");
  const [width, height, left, bottom] = [260, 78, 44, 16];
  const values = points.map(([, value]) => value).concat(indicator.limit ?? []);
  let [low, high] = [Math.min(...values), Math.max(...values)];
  if (indicator.combine === "sum") low = Math.min(low, 0); // totals read from zero
  if (high === low) high = low + 1;
  const [first, last] = [points[0][0], points[points.length - 1][0]];
  const x = (at) => left + ((at - first) / (last - first || 1)) * (width - left - 4);
  const y = (value) => 4 + (1 - (value - low) / (high - low)) * (height - bottom - 8);
  const short = (at) => (dated ? new Date(at).toLocaleString(undefined, { month: "short", day: "numeric", hour: "numeric" }) : indicator.series[at].at);
  const label = `${indicator.title} for the city from ${short(first)} to ${short(last)}: between ${figure(Math.min(...points.map((p) => p[1])), indicator.unit)} and ${figure(Math.max(...points.map((p) => p[1])), indicator.unit)}`;
  return svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, class: "spark", role: "img", "aria-label": label },
    svg("title", {}, label),
    svg("text", { x: left - 4, y: y(high) + 4, "text-anchor": "end" }, figure(high, "")),
    svg("text", { x: left - 4, y: y(low) + 4, "text-anchor": "end" }, figure(low, "")),
    svg("line", { x1: left, x2: width - 4, y1: y(low), y2: y(low), class: "axis" }),
    indicator.limit !== null && indicator.limit !== undefined ? svg("line", { x1: left, x2: width - 4, y1: y(indicator.limit), y2: y(indicator.limit), class: "limit" }) : null,
    svg("polyline", { points: points.map(([at, value]) => `${x(at).toFixed(1)},${y(value).toFixed(1)}`).join(" "), class: "series" }),
    svg("text", { x: left, y: height - 3 }, short(first)),
    svg("text", { x: width - 4, y: height - 3, "text-anchor": "end" }, short(last)),
  );
}

function tile(indicator, rerender) {
  const chosen = state.indicator === indicator.dataset_id;
  const past = Object.entries(indicator.districts).filter(([, value]) => pastLimit(indicator, value)).map(([name]) => name);
  const cityPast = pastLimit(indicator, indicator.city);
  return h(
    "article",
    { class: `tile${chosen ? " chosen" : ""}`, "aria-labelledby": `tile-${indicator.dataset_id}` },
    h("h2", { id: `tile-${indicator.dataset_id}` }, indicator.title),
    indicator.problem
      ? h("p", { class: "error" }, `Not shown: ${indicator.problem}`)
      : indicator.version
      ? h("p", { class: `figure${cityPast ? " warn" : ""}` }, figure(indicator.city, indicator.unit), h("span", { class: "muted" }, ` city, ${moment(indicator.at)}`))
      : h("p", { class: "muted" }, "Not built yet: the platform builds it from its inputs within a minute"),
    indicator.limit !== null && indicator.limit !== undefined
      ? h("p", { class: past.length || cityPast ? "warn" : "muted" }, past.length ? `Past the limit of ${figure(indicator.limit, indicator.unit)} in ${past.join(", ")}` : `Within the limit of ${figure(indicator.limit, indicator.unit)}`)
      : null,
    indicator.version && !indicator.problem ? sparkline(indicator) : null,
    h(
      "p",
      { class: "sources" },
      "From ",
      indicator.sources.map((source, index) => [
        index ? ", " : "",
        source.owner ? h("a", { href: `#/datasets/${encodeURIComponent(source.dataset_id)}` }, source.dataset_id) : source.dataset_id,
        source.version ? `@${source.version}` : "",
        !source.owner ? " (no longer visible)" : !source.readable ? h("span", { class: "warn" }, " (no longer granted: not rebuilt)") : source.grant_id ? [" under ", h("a", { href: "#/grants", title: source.grant_id }, "a grant")] : " (own or open data)",
      ]),
      " · ",
      h("a", { href: `#/datasets/${encodeURIComponent(indicator.dataset_id)}` }, "lineage and versions"),
    ),
    Object.keys(indicator.districts).length
      ? h("button", { type: "button", "aria-pressed": chosen ? "true" : "false", "data-indicator": indicator.dataset_id, onclick: () => { state.indicator = indicator.dataset_id; rerender(`button[data-indicator="${CSS.escape(indicator.dataset_id)}"]`); } }, "Show on the map")
      : h("p", { class: "muted" }, "City-wide: not by district"),
  );
}

function projection(boundaries) {
  const points = Object.values(boundaries.districts).flat(2);
  const lons = points.map((p) => p[0]);
  const lats = points.map((p) => p[1]);
  const [west, east, south, north] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  const squeeze = Math.cos((((north + south) / 2) * Math.PI) / 180); // a degree of longitude is shorter
  const width = 520;
  const scale = width / Math.max((east - west) * squeeze, 1e-9);
  const height = Math.max(120, (north - south) * scale);
  return { width, height, at: ([lon, lat]) => [(lon - west) * squeeze * scale, (north - lat) * scale] };
}

function map(picture, indicator, rerender) {
  const { boundaries } = picture;
  if (!boundaries) return h("p", { class: "muted" }, "No map: no dataset tagged “boundaries” (a district and a GeoJSON geometry column) that your department may read.");
  const place = projection(boundaries);
  const colour = indicator ? colours(indicator) : null;
  const shapes = Object.entries(boundaries.districts).map(([district, rings]) => {
    const value = indicator ? indicator.districts[district] : undefined;
    const path = rings.map((ring) => `M${ring.map((point) => place.at(point).map((n) => n.toFixed(1)).join(",")).join("L")}Z`).join("");
    const points = rings.flat();
    const [x, y] = place.at([points.reduce((s, p) => s + p[0], 0) / points.length, points.reduce((s, p) => s + p[1], 0) / points.length]);
    const label = `${district}: ${indicator ? figure(value, indicator.unit) : "no indicator chosen"}`;
    const choose = () => { state.district = district; rerender(`path[data-district="${CSS.escape(district)}"]`); };
    return svg(
      "g",
      { class: `district${state.district === district ? " chosen" : ""}` },
      svg("path", { "data-district": district, d: path, fill: colour && value !== undefined ? colour.apply(value) : "#e8e8e8", tabindex: 0, role: "button", "aria-label": label, onclick: choose, onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); choose(); } } }, svg("title", {}, label)),
      svg("text", { x: x.toFixed(1), y: y.toFixed(1), "text-anchor": "middle", "aria-hidden": "true" }, district),
    );
  });
  const drawing = svg("svg", { viewBox: `0 0 ${place.width} ${place.height.toFixed(0)}`, class: "city-map", role: "group", "aria-label": `Map of the city's districts${indicator ? `, coloured by ${indicator.title}` : ""}` }, shapes);
  return h("div", { class: "map" }, drawing, colour ? legend(colour, indicator) : h("p", { class: "muted" }, "Choose an indicator to colour the map."));
}

function legend(colour, indicator) {
  const drawn = Plot.legend({ color: colour, width: 320 });
  const [low, high] = colour.domain;
  drawn.setAttribute("role", "img");
  drawn.setAttribute("aria-label", `Colours of the map: ${indicator.title} from ${figure(low, indicator.unit)} (lightest) to ${figure(high, indicator.unit)} (darkest)`);
  return drawn;
}

function district(picture) {
  if (!state.district) return h("p", { class: "muted" }, "Choose a district on the map to see all its figures.");
  const rows = picture.indicators.filter((i) => Object.keys(i.districts).length).map((i) => {
    const value = i.districts[state.district];
    return [i.title, value === undefined ? "no value" : h("span", { class: pastLimit(i, value) ? "warn" : "" }, figure(value, i.unit)), moment(i.at)];
  });
  const alerts = picture.alerts.map((rule) => [rule.name, String(rule.districts[state.district] || 0), rule.dataset_id]);
  return h("section", { "aria-labelledby": "district-title" }, h("h2", { id: "district-title" }, state.district), table(["indicator", "value", "at"], rows), alerts.length ? table(["rule", "open alerts here", "on"], alerts) : null);
}

function alerts(picture) {
  if (!picture.alerts.length) return h("p", { class: "muted" }, "No alert rules of your department on the indicators' inputs.");
  const rows = picture.alerts.map((rule) => [
    h("a", { href: `#/datasets/${encodeURIComponent(rule.dataset_id)}` }, rule.name),
    h("span", { class: rule.open ? "warn" : "" }, String(rule.open)),
    String(rule.raised),
    Object.entries(rule.districts).map(([name, count]) => `${name} ${count}`).join(", ") || "–",
    moment(rule.latest),
  ]);
  return table(["rule", "open", "raised", "open by district", "latest window"], rows, "Open: raised on the dataset's latest version");
}

export async function city(api, main) {
  const picture = await api.get("/city");
  const byDistrict = picture.indicators.filter((i) => Object.keys(i.districts).length);
  if (!byDistrict.some((i) => i.dataset_id === state.indicator)) state.indicator = byDistrict.length ? byDistrict[0].dataset_id : null;
  if (picture.boundaries && state.district && !(state.district in picture.boundaries.districts)) state.district = null;
  const holder = h("div", {});
  // Redrawn whole on each choice; the focus goes back to what was pressed (a keyboard user stays put).
  const draw = (focus) => {
    const indicator = picture.indicators.find((i) => i.dataset_id === state.indicator) || null;
    holder.replaceChildren(
      h("h1", {}, "City picture"),
      h("p", { class: "muted" }, `${picture.department}'s indicators, built only from what its grants allow; as of ${moment(picture.generated_at)}.`),
      picture.indicators.length
        ? h("div", { class: "tiles" }, picture.indicators.map((i) => tile(i, draw)))
        : h("p", {}, "No indicators yet. Define a derived dataset with an `indicator` (cityshare analytics derive … --indicator FILE) and it appears here."),
      h("div", { class: "city-body" }, map(picture, indicator, draw), district(picture)),
      h("h2", {}, "Alerts"),
      alerts(picture),
    );
    if (focus) holder.querySelector(focus)?.focus();
  };
  draw();
  put(main, holder);
}
