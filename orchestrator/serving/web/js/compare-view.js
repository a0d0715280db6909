// Several backends on the same page, one column each: the picture with that backend's blocks (disagreements
// marked), its markdown, or its error — a failing backend never blanks the others. Above them, the pairwise
// agreement (whole document, and this page's matched blocks). Hovering a block lights up the blocks the other
// backends matched with it.

import { h, add, fill, pct, fmtSeconds, download, outName } from "./dom.js";
import { PageNav } from "./page-nav.js";
import { PageReading } from "./page-reading.js";
import { errorCard } from "./errors.js";
import { documentLine, downloadButtons, modelLine, warningList } from "./summary.js";

export class CompareView {
  constructor(response, { pageImages, dpi }) {
    this.response = response;
    this.pageImages = pageImages;
    this.dpi = dpi;
    this.entries = response.entries;
    this.agreementBox = h("div", { class: "agreement" });
    this.nav = new PageNav((i) => this.show(i));
    this.columns = h("div", { class: "columns" });
    this.columns.style.setProperty("--columns", String(this.entries.length));
    this.element = h("div", { class: "compare-view" }, this.header(), this.agreementBox, this.nav.element, this.columns);
    const indices = new Set();
    for (const e of this.entries) if (e.ok) e.result.pages.forEach((p) => indices.add(p.index));
    const sorted = [...indices].sort((a, b) => a - b);
    this.nav.set(sorted);
    if (sorted.length) this.nav.choose(sorted[0]);
    else this.show(null);
  }

  header() {
    const r = this.response;
    return h(
      "div",
      { class: "result-head" },
      h(
        "div",
        { class: "head-line" },
        h("h2", {}, `Comparison of ${this.entries.length} backends`),
        h("div", { class: "downloads" }, h("button", { type: "button", class: "secondary small", onclick: () => download(outName(r.document.name, "compare.json"), JSON.stringify(r, null, 2), "application/json") }, "↓ Comparison JSON")),
      ),
      h("p", { class: "doc-line" }, documentLine(r.document)),
    );
  }

  renderAgreement(index) {
    const r = this.response;
    const page = index === null ? null : pageComparison(r, index);
    const rows = r.agreement.map((pair) => {
      const stats = pairStats(page, pair.a, pair.b);
      return h(
        "tr",
        { dataset: { pair: `${pair.a}|${pair.b}` } },
        h("th", { scope: "row" }, `${pair.a} ↔ ${pair.b}`),
        h("td", { class: "num agreement-doc" }, pct(pair.agreement)),
        h("td", { class: "num" }, stats ? String(stats.matched) : "–"),
        h("td", { class: "num" }, stats && stats.mean !== null ? pct(stats.mean) : "–"),
        h("td", { class: "num" }, stats ? String(stats.low) : "–"),
      );
    });
    const failed = this.entries.filter((e) => !e.ok).length;
    fill(
      this.agreementBox,
      h("h3", {}, "Agreement"),
      rows.length
        ? h(
            "table",
            { class: "agreement-table" },
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Pair"), h("th", { scope: "col" }, "Text agreement (document)"), h("th", { scope: "col" }, `Blocks matched (page ${index === null ? "–" : index + 1})`), h("th", { scope: "col" }, "Mean block agreement"), h("th", { scope: "col" }, `Matched below ${page ? pct(page.disagree_below) : "the threshold"}`))),
            h("tbody", {}, rows),
          )
        : h("p", { class: "hint" }, failed ? "Fewer than two backends answered, so there is nothing to compare." : "No pairs to compare."),
      Array.isArray(r.pages)
        ? h("p", { class: "hint" }, `Boxes with a red dashed edge are blocks no other backend agrees with: no block over the same region, or a match whose text agrees below ${page ? pct(page.disagree_below) : "the service's threshold"}. Hover a block to see its matches.`)
        : h("p", { class: "hint" }, "This server reports no block-level agreement, so no blocks are marked."),
    );
  }

  show(index) {
    this.renderAgreement(index);
    const page = index === null ? null : pageComparison(this.response, index);
    this.readings = new Map();
    const columns = this.entries.map((entry) => this.column(entry, index, page));
    fill(this.columns, ...columns);
  }

  column(entry, index, pageCmp) {
    const head = h(
      "header",
      { class: "column-head" },
      h("h3", {}, entry.backend, " ", h("span", { class: `badge ${entry.ok ? "ok" : "failed"}` }, entry.ok ? "answered" : "failed")),
      h("p", { class: "hint" }, entry.ok ? `${modelLine(entry.result.model)} · ${fmtSeconds(entry.seconds)}` : `after ${fmtSeconds(entry.seconds)}`),
      entry.ok ? downloadButtons(entry.result, entry.backend) : null,
    );
    const col = h("section", { class: `column${entry.ok ? "" : " failed"}`, dataset: { backend: entry.backend }, "aria-label": entry.backend }, head);
    if (!entry.ok) {
      add(col, h("div", { class: "error-card inline", role: "alert" }, errorCard(entry.error, { compact: true })));
      return col;
    }
    add(col, warningList(entry.result.warnings));
    const page = entry.result.pages.find((p) => p.index === index);
    if (!page) {
      add(col, h("p", { class: "hint" }, index === null ? "No pages." : `No page ${index + 1} in this answer.`));
      return col;
    }
    add(col, warningList(page.warnings, "Page warnings"));
    const marks = marksFor(pageCmp, entry.backend, page.blocks.length);
    const reading = new PageReading(page, this.pageImages.url(index, this.dpi), {
      label: entry.backend,
      marks,
      stacked: true,
      onHover: (i) => this.linkPeers(entry.backend, pageCmp, i),
    });
    this.readings.set(entry.backend, reading);
    const disagree = [...marks.values()].filter((m) => m.disagree).length;
    add(col, 
      h("p", { class: "column-stats hint" }, `${page.blocks.length} blocks`, pageCmp ? ` · ${disagree} disagreeing` : ""),
      reading.element,
    );
    return col;
  }

  /** Light up, in the other columns, the blocks matched with block `i` of `backend`. */
  linkPeers(backend, pageCmp, i) {
    const peers = i === null || i === undefined ? [] : matchesOf(pageCmp, backend).get(i) || [];
    for (const [name, reading] of this.readings) {
      if (name === backend) continue;
      reading.markBlocks(peers.filter((p) => p.other === name).map((p) => p.index), "peer");
    }
  }
}

// Block-level agreement as the service computed it (CompareResponse.pages, from shared/agreement.py): which blocks
// disagree is the server's answer (pages[].disagreements, matches[].agrees); this only draws it.

/** The page's comparison entry, or null (older servers send no `pages`; a page only one backend read has none). */
function pageComparison(response, index) {
  if (!Array.isArray(response.pages)) return null;
  return response.pages.find((p) => p.index === index) || null;
}

/** Every match a block of `backend` takes part in, seen from that side: Map(blockIndex -> [{other, index, ...}]). */
function matchesOf(page, backend) {
  const out = new Map();
  if (!page) return out;
  for (const m of page.matches) {
    let mine = null;
    if (m.a === backend) mine = [m.a_index, { other: m.b, index: m.b_index }];
    else if (m.b === backend) mine = [m.b_index, { other: m.a, index: m.a_index }];
    if (!mine) continue;
    const [i, peer] = mine;
    out.set(i, [...(out.get(i) || []), { ...peer, agreement: m.agreement, iou: m.iou, teds: m.teds }]);
  }
  return out;
}

/** Marks for `backend`'s blocks on this page: Map(blockIndex -> {disagree, note}); empty without block data. */
function marksFor(page, backend, blockCount) {
  const marks = new Map();
  if (!page) return marks;
  const matches = matchesOf(page, backend);
  const disagreeing = new Set(page.disagreements?.[backend] || []);
  for (let i = 0; i < blockCount; i += 1) {
    const peers = matches.get(i) || [];
    const disagree = disagreeing.has(i);
    if (peers.length === 0) {
      marks.set(i, { disagree, note: "No other backend has a block over this region." });
      continue;
    }
    const lines = peers.map((p) => `${p.other} block ${p.index + 1}: text agrees ${pct(p.agreement)}${p.teds === null || p.teds === undefined ? "" : `, table TEDS ${p.teds.toFixed(2)}`}`);
    marks.set(i, { disagree, note: `${disagree ? "Disagreement. " : ""}Matches ${lines.join("; ")}.` });
  }
  return marks;
}

/** Per pair of backends on this page: blocks matched, their mean text agreement, and how many do not agree. */
function pairStats(page, a, b) {
  if (!page) return null;
  const ms = page.matches.filter((m) => (m.a === a && m.b === b) || (m.a === b && m.b === a));
  if (ms.length === 0) return { matched: 0, mean: null, low: 0 };
  const mean = ms.reduce((s, m) => s + m.agreement, 0) / ms.length;
  return { matched: ms.length, mean, low: ms.filter((m) => m.agrees === false).length };
}
