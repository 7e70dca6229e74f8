// Run in the console's page by tests/e2e/test_console.py: what a screen-reader or keyboard user, or
// a low-vision reader, would meet on the page as shown. Returns a list of findings (empty: none).
() => {
  const findings = [];
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== "hidden" && style.display !== "none";
  };
  const describe = (el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${(el.textContent || el.value || "").trim().slice(0, 40)}"`;
  const named = (el) =>
    (el.getAttribute("aria-label") || "").trim() ||
    (el.getAttribute("aria-labelledby") || "").split(" ").map((id) => document.getElementById(id)?.textContent || "").join("").trim() ||
    (el.labels ? [...el.labels].map((l) => l.textContent).join("").trim() : "") ||
    (el.getAttribute("title") || "").trim();

  for (const control of document.querySelectorAll("input, select, textarea")) {
    if (control.type !== "hidden" && visible(control) && !named(control)) findings.push(`unlabelled control ${describe(control)}`);
  }
  for (const target of document.querySelectorAll("button, a[href], [role=button]")) {
    if (visible(target) && !(target.textContent.trim() || named(target))) findings.push(`nameless ${describe(target)}`);
  }
  for (const chart of document.querySelectorAll("svg")) {
    const figure = chart.closest("figure, [role=img]");
    if (visible(chart) && !(named(chart) || (figure && (named(figure) || figure.querySelector("figcaption"))))) {
      findings.push(`chart without a text alternative ${describe(chart.parentElement)}`);
    }
  }
  if (!document.documentElement.lang) findings.push("no page language");
  if (!document.querySelector("h1")) findings.push("no h1");

  // WCAG 2.1 contrast: 4.5:1 for text, 3:1 for large text (24px, or 18.66px bold).
  const channels = (colour) => (colour.match(/[\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const linear = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const [r, g, b, a = 1] = channels(getComputedStyle(node).backgroundColor);
      if (a > 0.5) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!el || seen.has(el) || !walker.currentNode.textContent.trim() || !visible(el) || el.closest("svg")) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    const [L1, L2] = [luminance(channels(style.color)), luminance(background(el))].sort((a, b) => b - a);
    const ratio = (L1 + 0.05) / (L2 + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) findings.push(`contrast ${ratio.toFixed(2)}:1 ${describe(el)}`);
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) {
    findings.push(`wider than the screen: ${document.documentElement.scrollWidth}px in ${window.innerWidth}px`);
  }
  return findings;
}
