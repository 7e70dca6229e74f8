// A small DOM builder: h("button", {onclick, class: "primary"}, "Approve"). Text is always text
// (textContent), never HTML, so nothing a dataset or a request says can run as markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// Appends what is given, leaving out what is not (null, undefined, false): DOM's own append would
// write "null".
export function put(parent, ...children) {
  parent.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
  return parent;
}

// A table in a box of its own width: a table wider than the page scrolls sideways in its box (the
// page never does), so cells need not break words anywhere.
export function table(headers, rows, caption) {
  // Focusable, so a keyboard can scroll it too (when it is wider than the page).
  return h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption || headers.join(", ") }, h(
    "table",
    {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((header) => h("th", { scope: "col" }, header)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", {}, cell))))),
  ));
}

// Announced to screen readers and shown at the top of the page.
export function say(message, kind = "info") {
  const status = document.getElementById("status");
  status.className = `status ${kind}`;
  status.textContent = message;
}

export function field(label, control) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

export const when = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, " UTC") : "");

// A listing a page at a time, one API call per page: `load(cursor, page)` shows the page and
// answers the next page's cursor (none: the last). Previous goes back through the cursors already
// seen; the buttons wait while a page loads (a double press moves one page), a failure is said.
export function paged(label, load) {
  const nav = h("nav", { class: "pager", "aria-label": label });
  let cursors = [undefined];
  let busy = false;
  const go = async (page, raise = false) => {
    if (busy) return;
    busy = true;
    for (const button of nav.querySelectorAll("button")) button.disabled = true;
    try {
      const next = await load(cursors[page], page);
      cursors = [...cursors.slice(0, page + 1), next || undefined];
      nav.replaceChildren(
        page ? h("button", { type: "button", onclick: () => go(page - 1) }, "Previous page") : null,
        next ? h("button", { type: "button", onclick: () => go(page + 1) }, "Next page") : null,
      );
    } catch (error) {
      if (raise) throw error; // a first page that cannot be shown is the page's failure
      say(`Not shown: ${error.message}`, "error");
      for (const button of nav.querySelectorAll("button")) button.disabled = false;
    } finally {
      busy = false;
    }
  };
  return { nav, first: () => { cursors = [undefined]; return go(0, true); } };
}
