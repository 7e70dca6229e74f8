// The department's audit chain: filterable, who read what under which grant over time, and a
// "Verify chain" that recomputes every hash in the browser, as `cityshare audit verify` does, against
// a witness (the head verified last time) the steward downloads and keeps outside CityShare.

import { readsOverTime } from "../charts.js";
import { field, h, put, say, table, when } from "../dom.js";

const GENESIS = "0".repeat(64);
const encoder = new TextEncoder();

// Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False), for the entries' values.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

async function entryHash(entry) {
  const { hash, ...rest } = entry;
  void hash;
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(canonical(rest)));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function verifyChain(entries, witness) {
  const problems = [];
  let previous = GENESIS;
  let expected = 1;
  let witnessed = false;
  for (const entry of entries) {
    if (entry.seq !== expected) problems.push(`entry ${entry.seq}: expected sequence ${expected} (an entry is missing or moved)`);
    if (entry.prev_hash !== previous) problems.push(`entry ${entry.seq}: does not link to the entry before it`);
    if ((await entryHash(entry)) !== entry.hash) problems.push(`entry ${entry.seq}: content does not match its hash (altered)`);
    if (witness && entry.seq === witness.seq) {
      witnessed = true;
      if (entry.hash !== witness.hash) problems.push(`entry ${entry.seq}: differs from the head witnessed before (history rewritten)`);
    }
    previous = entry.hash;
    expected = entry.seq + 1;
  }
  if (witness && witness.seq > 0 && !witnessed) problems.push(`the chain ends at entry ${expected - 1} but entry ${witness.seq} was witnessed before (entries removed)`);
  return { entries: entries.length, problems, head: { seq: expected - 1, hash: previous } };
}

async function allEntries(api, department) {
  const entries = [];
  let after = 0;
  for (;;) {
    const page = await api.get("/audit", { department, after, limit: 500 });
    entries.push(...page.entries);
    if (page.next_after === null || page.next_after === undefined) return entries;
    after = page.next_after;
  }
}

// Who read what under which grant: one row per (department, dataset, grant), newest first.
function readsByGrant(entries) {
  const groups = new Map();
  for (const e of entries.filter((entry) => entry.action === "ReadData" && entry.decision === "allow")) {
    const grant = (e.details && e.details.grant) || "(no grant: owner or public)";
    const key = JSON.stringify([e.actor_department, e.resource, grant]);
    const group = groups.get(key) || { who: e.actor_department, what: e.resource, grant, reads: 0, last: "" };
    group.reads += 1;
    group.last = e.at > group.last ? e.at : group.last;
    groups.set(key, group);
  }
  const rows = [...groups.values()].sort((a, b) => (a.last < b.last ? 1 : -1));
  return table(["department", "dataset", "grant", "reads", "last read"], rows.map((g) => [g.who, g.what, g.grant, g.reads, when(g.last)]), "Reads allowed, by department, dataset and grant");
}

export async function audit(api, main) {
  const department = api.identity.department;
  const entries = await allEntries(api, department);
  put(main, h("h1", {}, `Audit chain of ${department}`));
  const actor = h("input", { type: "search", placeholder: "department or principal" });
  const action = h("select", {}, h("option", { value: "" }, "(any action)"), [...new Set(entries.map((e) => e.action))].sort().map((a) => h("option", { value: a }, a)));
  const dataset = h("input", { type: "search", placeholder: "dataset id" });
  const decision = h("select", {}, h("option", { value: "" }, "(any decision)"), h("option", { value: "allow" }, "allow"), h("option", { value: "deny" }, "deny"));
  const result = h("div", { class: "verify", role: "region", "aria-live": "polite" });
  const witnessInput = h("input", { type: "file", accept: "application/json" });
  const listing = h("div", {});
  const render = () => {
    const shown = entries.filter((e) =>
      (!actor.value || `${e.actor_department}/${e.actor_principal}`.includes(actor.value)) &&
      (!action.value || e.action === action.value) &&
      (!dataset.value || e.resource.includes(dataset.value)) &&
      (!decision.value || e.decision === decision.value));
    listing.replaceChildren(table(
      ["seq", "when", "who", "action", "resource", "grant", "decision"],
      shown.slice(-300).reverse().map((e) => [e.seq, when(e.at), `${e.actor_department}/${e.actor_principal}`, e.action, e.resource, (e.details && e.details.grant) || "", h("span", { class: e.decision }, e.decision)]),
      `${shown.length} of ${entries.length} entries (newest first, at most 300 shown)`,
    ));
  };
  for (const control of [actor, action, dataset, decision]) control.addEventListener("input", render);
  const verify = async () => {
    let witness = null;
    if (witnessInput.files.length) {
      // A file that is not a witness is said so, not ignored (a chain would then verify without it).
      try {
        witness = JSON.parse(await witnessInput.files[0].text());
        if (!witness || typeof witness.seq !== "number" || typeof witness.hash !== "string") throw new Error("it has no seq and hash");
      } catch (error) {
        result.replaceChildren(h("p", { class: "error", id: "verify-result" }, `${witnessInput.files[0].name} is not a witness file (${error.message}): nothing was verified`));
        say("Not verified: the witness file could not be read", "error");
        return;
      }
    }
    const report = await verifyChain(await allEntries(api, department), witness);
    const intact = report.problems.length === 0;
    const saved = new Blob([JSON.stringify({ chain: department, seq: report.head.seq, hash: report.head.hash })], { type: "application/json" });
    result.replaceChildren(); put(result, 
      h("p", { class: intact ? "ok" : "error", id: "verify-result" }, intact ? `Chain ${department}: ${report.entries} entries, intact` : `Chain ${department}: BROKEN`),
      report.problems.length ? h("ul", {}, report.problems.map((p) => h("li", {}, p))) : null,
      h("a", { href: URL.createObjectURL(saved), download: `${department}-witness.json` }, "Download the witness (keep it; give it next time)"),
    );
    say(intact ? "The audit chain verified intact" : "The audit chain is broken", intact ? "ok" : "error");
  };
  put(main, 
    h("section", {}, h("h2", {}, "Verify"), field("Witness from last time (optional)", witnessInput), h("button", { class: "primary", onclick: verify }, "Verify chain"), result),
    h("section", {}, h("h2", {}, "Who read your data"), readsOverTime(entries), readsByGrant(entries)),
    h("section", {}, h("h2", {}, "Entries"), h("div", { class: "filters" }, field("Actor", actor), field("Action", action), field("Dataset", dataset), field("Decision", decision)), listing),
  );
  render();
}
