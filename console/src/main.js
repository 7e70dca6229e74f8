// The stewards' console: a static page; every request goes to CityShare's API signed in the browser.

import { Api } from "./api.js";
import { h, say } from "./dom.js";
import { loadIdentity } from "./keystore.js";
import { admin, departmentPage } from "./views/admin.js";
import { audit } from "./views/audit.js";
import { city } from "./views/city.js";
import { catalog, datasetPage } from "./views/datasets.js";
import { grants } from "./views/grants.js";
import { inbox } from "./views/inbox.js";
import { signin } from "./views/signin.js";

const PAGES = [
  ["#/inbox", "Inbox", inbox],
  ["#/city", "City", city],
  ["#/grants", "Grants", grants],
  ["#/datasets", "Datasets", catalog],
  ["#/audit", "Audit", audit],
  ["#/admin", "Admin", admin],
];

let api = null;
let config = null;
let renders = 0;

let lastHash = "";

async function route() {
  // Each page is built aside and shown when complete; a newer navigation wins over an older one.
  const render = ++renders;
  const shown = document.getElementById("main");
  const main = h("div", {});
  const show = () => {
    if (render === renders) {
      shown.replaceChildren(...main.childNodes);
      shown.focus();
      performance.mark(`drawn ${location.hash}`); // when the page was usable (benchmarks/console.py)
    }
  };
  const hash = location.hash || "#/inbox";
  // A message belongs to the page it was said on: another page starts without it (a page redrawn
  // after a decision keeps it).
  if (hash !== lastHash) say("");
  lastHash = hash;
  for (const link of document.querySelectorAll("nav a")) link.toggleAttribute("aria-current", hash.startsWith(link.getAttribute("href")));
  if (!api || hash === "#/signin") {
    signin(main, config, await loadIdentity(), (identity) => {
      api = new Api(identity, config.endpoint);
      showIdentity(identity);
      if (location.hash === "#/inbox") route();
      else location.hash = "#/inbox";
    });
    show();
    return;
  }
  const [, page, id, more, version] = hash.split("/");
  try {
    if (page === "datasets" && id) await datasetPage(api, main, decodeURIComponent(id), more === "versions" ? Number(version) : undefined);
    else if (page === "admin" && id) await departmentPage(api, main, decodeURIComponent(id));
    else await (PAGES.find(([prefix]) => hash.startsWith(prefix)) || PAGES[0])[2](api, main);
  } catch (error) {
    const label = (PAGES.find(([prefix]) => hash.startsWith(prefix)) || PAGES[0])[1];
    if (!main.querySelector("h1")) main.prepend(h("h1", {}, label));
    const refused = error.status === 403
      ? "Your department or role may not use this page. "
      : error.status === 401 && api
        ? `This browser's key is not (or no longer) registered for ${api.identity.department}/${api.identity.principal}: the platform admin registers it (cityshare admin add-key), then reload. `
        : "";
    main.append(h("p", { class: "error" }, `${refused}This page could not be shown: ${error.message}`));
    say(error.message, "error");
  }
  show();
}

// Departments are managed by the platform's own principals: the others are not offered the page
// (the API refuses them anyway).
function showIdentity(identity) {
  document.getElementById("who").textContent = `${identity.department}/${identity.principal}`;
  const adminLink = document.querySelector('nav a[data-page="Admin"]');
  if (adminLink) adminLink.hidden = identity.department !== "platform";
}

async function start() {
  // The configuration (preloaded by the page) and the browser's key are read at the same time.
  const [loaded, identity] = await Promise.all([fetch("config.json").then((response) => response.json()), loadIdentity()]);
  config = loaded;
  const nav = document.getElementById("nav");
  nav.append(...PAGES.map(([href, label]) => h("a", { href, "data-page": label }, label)), h("a", { href: "#/signin" }, "Key"));
  window.addEventListener("hashchange", route);
  if (identity) {
    api = new Api(identity, config.endpoint);
    showIdentity(identity);
  }
  await route();
}

start();
