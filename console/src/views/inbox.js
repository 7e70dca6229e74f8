// Pending access requests to the steward's department: approve as asked, narrow, or deny — decided
// once, by the same API call the CLI makes.

import { field, h, paged, put, say, when } from "../dom.js";

const OPERATORS = ["eq", "ne", "lt", "le", "gt", "ge"];
const MEASURES = ["count", "sum", "mean", "min", "max", "p10", "p25", "median", "p75", "p90"];
const NUMERIC = ["number", "integer"];

const typeOf = (column) => [].concat(column.type).find((t) => t !== "null");
// Columns a grant can coarsen: date-times to an interval, numbers to a grid.
const coarsenable = (column) => NUMERIC.includes(typeOf(column)) || column.format === "date-time";

function narrowForm(api, request, schema, done) {
  const columns = request.columns.length ? request.columns : Object.keys(schema.properties);
  const keep = columns.map((name) => h("input", { type: "checkbox", checked: true, value: name, name: "keep" }));
  const mask = columns.map((name) => h("input", { type: "checkbox", value: name, name: "mask" }));
  const filterColumn = h("select", {}, h("option", { value: "" }, "(no row filter)"), Object.keys(schema.properties).map((n) => h("option", { value: n }, n)));
  const filterOp = h("select", {}, OPERATORS.map((op) => h("option", { value: op }, op)));
  const filterValue = h("input", { type: "text", placeholder: "value" });
  const coarsen = columns.filter((name) => schema.properties[name] && coarsenable(schema.properties[name])).map((name) => [
    name,
    h("input", { type: "text", size: 8, placeholder: schema.properties[name].format === "date-time" ? "e.g. 1h" : "e.g. 0.01" }),
  ]);
  const groupBy = columns.map((name) => h("input", { type: "checkbox", value: name, name: "group" }));
  const measureFunction = h("select", {}, MEASURES.map((m) => h("option", { value: m }, m)));
  const measureColumn = h("select", {}, h("option", { value: "" }, "(group sizes only)"), columns.filter((n) => NUMERIC.includes(typeOf(schema.properties[n] || {}))).map((n) => h("option", { value: n }, n)));
  const k = h("input", { type: "number", min: 2, max: 10000, value: 5 });
  // Groups of data about people are released only with differential privacy: the steward sets
  // what one release costs (epsilon) and what the grantee may spend on the dataset in all.
  const personal = Object.values(schema.properties).some((column) => column["x-personal"]);
  const epsilon = h("input", { type: "number", min: 0.01, max: 10, step: 0.01, value: 1 });
  const budget = h("input", { type: "number", min: 0.01, max: 1000, step: 0.01, value: 10 });
  const expires = h("input", { type: "date", value: (request.until || "").slice(0, 10) });
  const note = h("input", { type: "text", placeholder: "What you changed and why" });
  const submit = async (event) => {
    event.preventDefault();
    const terms = { columns: keep.filter((c) => c.checked).map((c) => c.value) };
    const masked = mask.filter((c) => c.checked).map((c) => c.value);
    if (masked.length) terms.masked_columns = masked;
    if (filterColumn.value) {
      const column = schema.properties[filterColumn.value];
      const numeric = ["number", "integer"].includes([].concat(column.type)[0]);
      terms.row_filter = { condition: { column: filterColumn.value, op: filterOp.value, value: numeric ? Number(filterValue.value) : filterValue.value } };
    }
    const generalised = Object.fromEntries(coarsen.filter(([, input]) => input.value.trim()).map(([name, input]) => [name, input.value.trim()]));
    if (Object.keys(generalised).length) terms.generalised = generalised;
    const grouped = groupBy.filter((c) => c.checked).map((c) => c.value);
    if (grouped.length) {
      terms.aggregate = { group_by: grouped, min_group_size: Number(k.value), measures: measureColumn.value ? [{ aggregate: measureFunction.value, column: measureColumn.value }] : [] };
      if (personal) terms.aggregate.privacy = { epsilon: Number(epsilon.value), delta: 1e-6, budget: Number(budget.value) };
    }
    if (expires.value) terms.expires_at = expires.value;
    try {
      const grant = await api.post(`/datasets/${request.dataset_id}/access-requests/${request.request_id}/approve`, { terms, note: note.value });
      done(`Approved narrowed: grant ${grant.grant_id} with columns ${grant.terms.columns.join(", ")}`);
    } catch (error) {
      say(`Not approved: ${error.message}`, "error");
    }
  };
  return h(
    "form",
    { class: "narrow", onsubmit: submit, "aria-label": `Narrow request ${request.request_id}` },
    h("fieldset", {}, h("legend", {}, "Columns to give"), columns.map((name, i) => h("label", { class: "check" }, keep[i], name))),
    h("fieldset", {}, h("legend", {}, "Columns to mask"), columns.map((name, i) => h("label", { class: "check" }, mask[i], name))),
    h("fieldset", {}, h("legend", {}, "Rows"), field("Column", filterColumn), field("Operator", filterOp), field("Value", filterValue)),
    coarsen.length ? h("fieldset", {}, h("legend", {}, "Coarsen (interval for times, grid for numbers)"), h("div", { class: "actions" }, coarsen.map(([name, input]) => field(name, input)))) : null,
    h("fieldset", {}, h("legend", {}, "Share groups of at least k subjects instead of rows (optional)"),
      h("div", {}, groupBy.map((box, i) => h("label", { class: "check" }, box, columns[i]))),
      h("div", { class: "actions" }, field("k (smallest group shared)", k), field("Measure", measureFunction), field("of column", measureColumn)),
      personal
        ? h("div", { class: "actions" }, field("Privacy: epsilon per release", epsilon), field("Privacy: budget in all", budget))
        : null),
    field("Expires", expires),
    field("Note", note),
    h("button", { type: "submit", class: "primary" }, "Approve narrowed"),
  );
}

const PAGE_SIZE = 20;
const schemas = new Map(); // a dataset's schema, fetched when a request on it is first narrowed

// One page of pending requests at a time (one API call per page), each card titled with its
// dataset; a decision removes its card and updates the count where it was taken, without reloading.
export async function inbox(api, main) {
  const heading = h("h1", {}, "Pending access requests");
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const cards = h("div", {});
  let waiting = 0;
  let shownPage = 0;
  const counted = () => {
    summary.textContent = waiting
      ? `${waiting} request${waiting === 1 ? "" : "s"} wait for a decision${shownPage ? ` (page ${shownPage + 1})` : ""}.`
      : "Nothing waits for a decision.";
  };
  const decided = (card, message) => {
    say(message, "ok");
    waiting = Math.max(0, waiting - 1);
    const next = card.nextElementSibling || card.previousElementSibling;
    card.remove();
    counted();
    (next?.querySelector("button") || heading).focus();
  };
  const pages = paged("Pages of requests", async (cursor, page) => {
    const answer = await api.get("/access-requests", { limit: PAGE_SIZE, cursor });
    waiting = answer.pending ?? answer.requests.length;
    shownPage = page;
    cards.replaceChildren(...answer.requests.map((request) => card(api, request, answer.titles[request.dataset_id], decided)));
    counted();
    return answer.next_cursor;
  });
  put(main, heading, summary, cards, pages.nav);
  await pages.first();
}

function card(api, request, title, decided) {
  const area = h("div", { class: "actions" });
  const reason = h("input", { type: "text", placeholder: "Why not", minlength: 3 });
  const article = h("article", { class: "card", "data-request": request.request_id });
  const approve = async () => {
    try {
      const grant = await api.post(`/datasets/${request.dataset_id}/access-requests/${request.request_id}/approve`, {});
      decided(article, `Approved as asked: grant ${grant.grant_id}`);
    } catch (error) { say(`Not approved: ${error.message}`, "error"); }
  };
  let opening = null; // a second press while the schema is on its way waits for the same form
  const narrow = () => {
    const open = area.querySelector("form.narrow");
    if (open) return open.querySelector("input, select")?.focus();
    opening ||= (async () => {
      try {
        if (!schemas.has(request.dataset_id)) schemas.set(request.dataset_id, (await api.get(`/datasets/${request.dataset_id}`)).schema);
        put(area, narrowForm(api, request, schemas.get(request.dataset_id), (message) => decided(article, message)));
      } catch (error) { say(`Cannot narrow: ${error.message}`, "error"); }
    })().finally(() => { opening = null; });
    return opening;
  };
  const deny = async (event) => {
    event.preventDefault();
    try {
      await api.post(`/datasets/${request.dataset_id}/access-requests/${request.request_id}/deny`, { reason: reason.value });
      decided(article, `Denied ${request.request_id}`);
    } catch (error) { say(`Not denied: ${error.message}`, "error"); }
  };
  put(area,
    h("button", { class: "primary", onclick: approve }, "Approve as asked"),
    // One form per request: pressing again shows it again, it does not add another.
    h("button", { onclick: narrow }, "Narrow…"),
    h("form", { class: "inline", onsubmit: deny }, field("Reason", reason), h("button", { type: "submit", class: "danger" }, "Deny")),
  );
  return put(article,
    h("h2", {}, `${request.requester_department} asks for ${title || request.dataset_id}`, title ? h("span", { class: "muted" }, ` (${request.dataset_id})`) : null),
    h("dl", {},
      h("dt", {}, "Purpose"), h("dd", { class: "purpose" }, `${request.purpose} (${request.purpose_category})`),
      h("dt", {}, "Legal basis"), h("dd", {}, request.legal_basis),
      h("dt", {}, "Columns"), h("dd", {}, request.columns.length ? request.columns.join(", ") : "all"),
      h("dt", {}, "Until"), h("dd", {}, when(request.until)),
      h("dt", {}, "Asked by"), h("dd", {}, `${request.requester_principal}, ${when(request.created_at)}`)),
    area);
}
