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
    const rows = list.map((grant) => [
      grant.grant_id,
      grant.dataset_id || `tags: ${grant.tags.join(", ")}`,
      direction === "given" ? grant.grantee_department : grant.owner,
      grant.status,
      (grant.terms.columns || []).join(", ") || "all",
      expiry(grant),
      privacy(grant),
      direction === "given" && grant.status === "active"
        ? h("button", { class: "danger", "aria-label": `Revoke ${grant.grant_id}`, onclick: async () => {
            if (!window.confirm(`Revoke grant ${grant.grant_id}? The grantee's next read is refused.`)) return;
            try {
              await api.delete(`/grants/${grant.grant_id}`);
              say(`Revoked ${grant.grant_id}`, "ok");
              window.dispatchEvent(new HashChangeEvent("hashchange"));
            } catch (error) { say(`Not revoked: ${error.message}`, "error"); }
          } }, "Revoke")
        : "",
    ]);
    put(main, h("h2", {}, title), rows.length ? table(["grant", "on", direction === "given" ? "to" : "from", "status", "columns", "expires", "privacy", ""], rows) : h("p", {}, "None."));
  }
}
