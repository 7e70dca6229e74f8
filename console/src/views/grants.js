// Grants given and received, with their expiry; revoking takes one confirmation.

import { h, put, say, table, when } from "../dom.js";

const SOON_DAYS = 14;

function expiry(grant) {
  const at = grant.terms.expires_at;
  if (!at) return "no expiry";
  const days = (Date.parse(at) - Date.now()) / 86_400_000;
  return days < SOON_DAYS && days > 0 ? h("span", { class: "warn" }, `${when(at)} — expires in ${Math.ceil(days)} days`) : when(at);
}

// Differentially private grants: what the grantee department has spent on the dataset (across its
// grants) of the steward's budget.
function privacy(grant) {
  const terms = grant.terms.aggregate && grant.terms.aggregate.privacy;
  if (!terms) return "";
  const spent = grant.privacy_spent ?? 0;
  const text = `ε ${spent.toFixed(2)} of ${terms.budget} spent`;
  return spent + terms.epsilon > terms.budget + 1e-9 ? h("span", { class: "warn" }, `${text} — exhausted`) : text;
}

const OPERATOR_WORDS = { eq: "=", ne: "≠", lt: "<", le: "≤", gt: ">", ge: "≥", in: "in", not_null: "is not null" };

function rowFilter(filter) {
  if (filter.condition) {
    const { column, op, value } = filter.condition;
    return op === "not_null" ? `${column} is not null` : `${column} ${OPERATOR_WORDS[op] || op} ${Array.isArray(value) ? value.join(", ") : value}`;
  }
  const parts = (filter.all || filter.any || []).map(rowFilter);
  return `(${parts.join(filter.all ? " and " : " or ")})`;
}

// Every term of a grant, in words: what the grantee reads, and how.
export function terms(grant) {
  const t = grant.terms;
  const said = [];
  said.push(t.columns && t.columns.length ? `columns: ${t.columns.join(", ")}` : "every column");
  if (t.row_filter) said.push(`rows where ${rowFilter(t.row_filter)}`);
  if (t.masked_columns?.length) said.push(`masked: ${t.masked_columns.join(", ")}`);
  if (t.decrypt_columns?.length) said.push(`in clear: ${t.decrypt_columns.join(", ")}`);
  if (t.linked_columns?.length) said.push(`linked: ${t.linked_columns.join(", ")}`);
  for (const [column, granularity] of Object.entries(t.generalised || {})) said.push(`${column} coarsened to ${granularity}`);
  if (t.aggregate) {
    const a = t.aggregate;
    const measures = (a.measures || []).map((m) => `${m.aggregate} of ${m.column}`);
    said.push(`groups by ${a.group_by.join(", ")} of at least ${a.min_group_size} subjects${measures.length ? `; ${measures.join(", ")}` : ""}`);
    if (a.privacy) said.push(`differentially private: ε ${a.privacy.epsilon} a release, budget ${a.privacy.budget}`);
  }
  return h("ul", { class: "terms" }, said.map((line) => h("li", {}, line)));
}

function purpose(grant) {
  return [grant.purpose, h("br", {}), h("span", { class: "muted" }, [grant.purpose_category, grant.legal_basis].filter(Boolean).join(" · "))];
}

function revokeButton(api, grant) {
  return h("button", { class: "danger", "aria-label": `Revoke ${grant.grant_id}`, onclick: async () => {
    if (!window.confirm(`Revoke grant ${grant.grant_id}? The grantee's next read is refused.`)) return;
    try {
      await api.delete(`/grants/${grant.grant_id}`);
      say(`Revoked ${grant.grant_id}`, "ok");
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    } catch (error) { say(`Not revoked: ${error.message}`, "error"); }
  } }, "Revoke");
}

// Grants given and received: the live ones with every term, the ended ones (revoked, expired) apart.
export async function grants(api, main) {
  put(main, h("h1", {}, "Grants"));
  for (const [direction, title] of [["given", "Given by your department"], ["received", "Received by your department"]]) {
    let list = [];
    try {
      list = (await api.get("/grants", { direction })).grants;
    } catch (error) {
      put(main, h("h2", {}, title), h("p", {}, `Not shown: ${error.message}`));
      continue;
    }
    const over = (g) => g.status !== "active" || (g.terms.expires_at && Date.parse(g.terms.expires_at) < Date.now());
    const row = (grant) => [
      grant.grant_id,
      grant.dataset_id ? h("a", { href: `#/datasets/${encodeURIComponent(grant.dataset_id)}` }, grant.dataset_id) : `tags: ${grant.tags.join(", ")}`,
      direction === "given" ? grant.grantee_department : grant.owner,
      purpose(grant),
      terms(grant),
      expiry(grant),
      privacy(grant),
      direction === "given" && !over(grant) ? revokeButton(api, grant) : grant.status === "active" ? (over(grant) ? "expired" : "active") : grant.status,
    ];
    const headers = ["grant", "on", direction === "given" ? "to" : "from", "purpose", "terms", "expires", "privacy", ""];
    const live = list.filter((g) => !over(g));
    const ended = list.filter(over);
    put(main, h("h2", {}, `${title}: ${live.length} active`), live.length ? table(headers, live.map(row)) : h("p", {}, "None active."));
    if (ended.length) put(main, h("details", {}, h("summary", {}, `${ended.length} ended (revoked or expired)`), table(headers, ended.map(row))));
  }
}
