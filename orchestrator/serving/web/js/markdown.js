// Markdown to safe HTML, and which rendered element shows which block's text.
//
// OCR output comes from untrusted documents (a scanned page can say "<script>", a PDF's text layer can carry
// anything), so marked's HTML always goes through DOMPurify, and images that are not inline data (a backend's
// "#page-1-figure-2" reference, or a remote URL that would leak the reader's address) become a placeholder.

import { marked } from "../vendor/marked.esm.js";
import DOMPurify from "../vendor/purify.es.mjs";
import { h } from "./dom.js";

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"],
  FORBID_ATTR: ["style", "class", "id"],
};

/** Sanitised HTML of `markdown` as a DocumentFragment-holding <div class="markdown">. */
export function renderMarkdown(markdown) {
  const html = marked.parse(markdown || "", { gfm: true, async: false });
  const root = h("div", { class: "markdown" });
  root.append(DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true }));
  for (const img of root.querySelectorAll("img")) {
    const src = img.getAttribute("src") || "";
    if (!src.startsWith("data:image/")) {
      img.replaceWith(h("span", { class: "figure-ref", title: src }, "▧ ", img.getAttribute("alt") || "figure"));
    }
  }
  for (const a of root.querySelectorAll("a[href]")) {
    a.setAttribute("target", "_blank");
    a.setAttribute("rel", "noopener noreferrer nofollow");
  }
  return root;
}

/** Letters and digits only, lower case: how two renderings of the same text are compared. */
export function normalise(text) {
  return (text || "").normalize("NFKC").toLowerCase().replace(/[^\p{L}\p{N}]+/gu, "");
}

/** The visible text of a block's markdown (tables, emphasis and headings rendered away). */
export function plainText(markdown) {
  return renderMarkdown(markdown).textContent || "";
}

const UNIT_SELECTOR = "h1,h2,h3,h4,h5,h6,p,li,table,pre,blockquote";

/**
 * Pair each block with the rendered elements ("units": paragraphs, headings, list items, tables...) showing its
 * text. Engines don't all put a block's text into the markdown verbatim (headers left out, figure references,
 * lines merged into paragraphs), so the pairing is by content: a unit whose normalised text contains the block's,
 * or is contained in it; failing that, the unit sharing most of the block's words.
 *
 * @returns {{blockUnits: Element[][], unitBlocks: Map<Element, number[]>}}
 */
export function matchBlocks(blocks, container) {
  const units = [...container.querySelectorAll(UNIT_SELECTOR)].filter((u) => !u.parentElement.closest(UNIT_SELECTOR));
  const unitText = units.map((u) => normalise(u.textContent));
  const unitWords = units.map((u) => words(u.textContent));
  const blockUnits = blocks.map((block) => {
    const text = plainText(block.text);
    const norm = normalise(text);
    if (norm.length < 2) return [];
    let found = units.filter((_, i) => contains(unitText[i], norm) || (part(unitText[i], norm) && norm.includes(unitText[i])));
    if (found.length === 0) {
      const bw = words(text);
      let best = -1;
      let bestScore = 0;
      unitWords.forEach((uw, i) => {
        const score = overlap(bw, uw);
        if (score > bestScore) [best, bestScore] = [i, score];
      });
      if (best >= 0 && bestScore >= 0.6) found = [units[best]];
    }
    return found;
  });
  const unitBlocks = new Map();
  blockUnits.forEach((found, b) => found.forEach((u) => unitBlocks.set(u, [...(unitBlocks.get(u) || []), b])));
  return { blockUnits, unitBlocks };
}

function contains(unit, block) {
  return unit.length >= 2 && unit.includes(block);
}

/** Whether a unit is big enough to count as a piece of a block that spans several units (not a stray word). */
function part(unit, block) {
  return unit.length >= Math.min(12, block.length) && unit.length >= 0.15 * block.length;
}

function words(text) {
  return new Set(
    (text || "")
      .normalize("NFKC")
      .toLowerCase()
      .split(/[^\p{L}\p{N}]+/u)
      .filter((w) => w.length > 2),
  );
}

function overlap(a, b) {
  if (a.size === 0 || b.size === 0) return 0;
  let shared = 0;
  for (const w of a) if (b.has(w)) shared += 1;
  return shared / a.size; // the share of the block's words the unit has
}
