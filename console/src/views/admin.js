// The platform admin: departments (register, suspend, reinstate), their principals and keys
// (register, add and retire keys for rotation).

import { field, h, put, say, table, when } from "../dom.js";

const refresh = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

async function act(action, done) {
  try {
    say(await action(), "ok");
    refresh();
  } catch (error) {
    say(`Not done: ${error.message}`, "error");
  }
  void done;
}

export async function admin(api, main) {
  const departments = await api.get("/admin/departments");
  const id = h("input", { type: "text", required: true, pattern: "[a-z][a-z0-9\\-]{1,31}", placeholder: "e.g. housing" });
  const name = h("input", { type: "text", required: true, placeholder: "e.g. Housing" });
  put(main, 
    h("h1", {}, "Departments"),
    h("form", { class: "inline", "aria-label": "Register a department", onsubmit: (event) => {
      event.preventDefault();
      act(async () => {
        const created = await api.post("/admin/departments", { department_id: id.value, name: name.value });
        return `Registered ${created.department_id}: its key is being made (a few seconds)`;
      });
    } }, field("Department id", id), field("Name", name), h("button", { type: "submit", class: "primary" }, "Register")),
    table(["department", "name", "status", "since", "key", ""], departments.map((d) => [
      h("a", { href: `#/admin/${d.department_id}` }, d.department_id), d.name, d.status, when(d.created_at), d.data_key ? "ready" : "being made",
      d.department_id === "platform" ? "" : h("button", { class: d.status === "active" ? "danger" : "", onclick: () => {
        // Suspending stops every request and everything the department defined: asked first.
        if (d.status === "active" && !window.confirm(`Suspend ${d.department_id}? Its requests are refused, and its rules, derived datasets and subscriptions stop, until reinstated.`)) return;
        return act(async () => {
        const status = d.status === "active" ? "suspended" : "active";
        await api.patch(`/admin/departments/${d.department_id}`, { status });
        return `${d.department_id} is now ${status}`;
      });
      } }, d.status === "active" ? "Suspend" : "Reinstate"),
    ]), `${departments.length} departments`),
  );
}

export async function departmentPage(api, main, departmentId) {
  const detail = await api.get(`/admin/departments/${departmentId}`);
  const principal = h("input", { type: "text", required: true, placeholder: "e.g. steward-ana" });
  const roles = ["member", "steward"].map((role) => h("input", { type: "checkbox", value: role, checked: role === "member" }));
  const keyPrincipal = h("select", {}, detail.principals.map((p) => h("option", { value: p.principal_id }, p.principal_id)));
  const jwk = h("textarea", { rows: 4, placeholder: '{"kty": "EC", "crv": "P-256", "x": "...", "y": "..."}' });
  put(main, 
    h("h1", {}, `${detail.department.name} (${departmentId})`),
    h("h2", {}, "Principals"),
    table(["principal", "roles", "status"], detail.principals.map((p) => [p.principal_id, p.roles.join(", "), p.status])),
    h("form", { class: "inline", "aria-label": "Register a principal", onsubmit: (event) => {
      event.preventDefault();
      act(async () => {
        await api.put(`/admin/departments/${departmentId}/principals/${principal.value}`, { roles: roles.filter((r) => r.checked).map((r) => r.value) });
        return `Principal ${principal.value} registered`;
      });
    } }, field("Principal id", principal), h("fieldset", {}, h("legend", {}, "Roles"), roles.map((r) => h("label", { class: "check" }, r, r.value))), h("button", { type: "submit" }, "Register principal")),
    h("h2", {}, "Keys"),
    table(["kid", "principal", "algorithm", "status", "added", ""], detail.keys.map((k) => [
      k.kid, k.principal_id, k.alg, k.status, when(k.created_at),
      k.status === "active" ? h("button", { class: "danger", "aria-label": `Retire ${k.kid}`, onclick: () => {
        if (window.confirm(`Retire key ${k.kid}? Requests signed with it are refused from now on.`)) act(async () => { await api.delete(`/admin/departments/${departmentId}/keys/${k.kid}`); return `Retired ${k.kid}`; });
      } }, "Retire") : "",
    ])),
    h("form", { "aria-label": "Add a public key", onsubmit: (event) => {
      event.preventDefault();
      act(async () => {
        const added = await api.post(`/admin/departments/${departmentId}/principals/${keyPrincipal.value}/keys`, { jwk: JSON.parse(jwk.value) });
        return `Key ${added.kid} added for ${keyPrincipal.value}`;
      });
    } }, field("Principal", keyPrincipal), field("Public key (JWK, as the console or `cityshare keys generate` shows it)", jwk), h("button", { type: "submit" }, "Add key")),
  );
}
