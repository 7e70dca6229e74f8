// Enrolment: the page makes a key pair in WebCrypto (private key not extractable, kept in IndexedDB)
// and shows the public JWK for the platform admin to register; or imports a key file once.

import { field, h, put, say } from "../dom.js";
import { enrol, forgetIdentity, importKey } from "../keystore.js";

export function signin(main, config, identity, onReady) {
  const department = h("input", { type: "text", required: true, value: identity?.department || "", autocomplete: "organization" });
  const principal = h("input", { type: "text", required: true, value: identity?.principal || "", autocomplete: "username" });
  const pem = h("input", { type: "file", accept: ".pem" });
  const shown = h("div", { id: "enrolment" });
  const show = (made) => {
    shown.replaceChildren(
      h("p", {}, `Key ${made.kid} for ${made.department}/${made.principal}. Ask the platform admin to register this public key (it holds no secret):`),
      h("pre", { id: "public-jwk", tabindex: 0 }, JSON.stringify(made.jwk)),
      h("p", {}, h("code", {}, `cityshare admin add-key ${made.department} ${made.principal} key.jwk`)),
      h("button", { class: "primary", onclick: () => onReady(made) }, "Continue"),
    );
  };
  put(main, 
    h("h1", {}, "Sign in"),
    h("p", {}, "Every request you make here is signed in this browser with your own key, exactly as the SDK signs it. The private key cannot be read out of the browser."),
    identity ? h("p", {}, `This browser holds key ${identity.kid} for ${identity.department}/${identity.principal}. `, h("button", { onclick: () => onReady(identity) }, "Use it"), " ", h("button", { class: "danger", onclick: async () => {
      // The key cannot be taken out of the browser: forgotten is gone, and the admin must register a new one.
      if (!window.confirm("Forget this browser's key? It cannot be recovered: a new key must be made and registered by the platform admin.")) return;
      await forgetIdentity(); say("Key forgotten"); location.reload();
    } }, "Forget it")) : null,
    h("form", { "aria-label": "Make a key", onsubmit: async (event) => {
      event.preventDefault();
      // The key this browser holds would be replaced, and it cannot be recovered: asked first.
      if (identity && !window.confirm(`Replace the key this browser holds for ${identity.department}/${identity.principal}? It cannot be recovered.`)) return;
      try {
        show(pem.files.length
          ? await importKey(department.value, principal.value, config.audience, await pem.files[0].text())
          : await enrol(department.value, principal.value, config.audience));
      } catch (error) { say(`No key: ${error.message}`, "error"); }
    } }, field("Department", department), field("Principal", principal), field("Key file to import (optional; otherwise a new key is made)", pem), h("button", { type: "submit", class: "primary" }, "Make my key")),
    shown,
  );
}
