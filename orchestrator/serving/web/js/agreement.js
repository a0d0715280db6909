// Block-level agreement of a comparison (CompareResponse.pages), read the way the service defines it
// (shared/agreement.py): a block is a disagreement when no other backend has a block over the same region, or
// when its best match's text agrees below 0.8.

import { pct } from "./dom.js";

export const DISAGREE_BELOW = 0.8;

/** The page's comparison entry, or null (older servers send no `pages`; a page only one backend read has none). */
export function pageComparison(response, index) {
  if (!Array.isArray(response.pages)) return null;
  return response.pages.find((p) => p.index === index) || null;
}

/** Every match a block of `backend` takes part in, seen from that side: Map(blockIndex -> [{other, index, ...}]). */
export function matchesOf(page, backend) {
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
export function marksFor(page, backend, blockCount) {
  const marks = new Map();
  if (!page) return marks;
  const matches = matchesOf(page, backend);
  const unmatched = new Set(page.unmatched?.[backend] || []);
  for (let i = 0; i < blockCount; i += 1) {
    const peers = matches.get(i) || [];
    if (unmatched.has(i) || peers.length === 0) {
      marks.set(i, { disagree: true, note: "No other backend has a block over this region." });
      continue;
    }
    const best = Math.max(...peers.map((p) => p.agreement));
    const lines = peers.map((p) => `${p.other} block ${p.index + 1}: text agrees ${pct(p.agreement)}${p.teds === null || p.teds === undefined ? "" : `, table TEDS ${p.teds.toFixed(2)}`}`);
    marks.set(i, { disagree: best < DISAGREE_BELOW, note: `${best < DISAGREE_BELOW ? "Disagreement. " : ""}Matches ${lines.join("; ")}.` });
  }
  return marks;
}

/** Per pair of backends on this page: blocks matched, their mean text agreement, and how many fall below 0.8. */
export function pairStats(page, a, b) {
  if (!page) return null;
  const ms = page.matches.filter((m) => (m.a === a && m.b === b) || (m.a === b && m.b === a));
  if (ms.length === 0) return { matched: 0, mean: null, low: 0 };
  const mean = ms.reduce((s, m) => s + m.agreement, 0) / ms.length;
  return { matched: ms.length, mean, low: ms.filter((m) => m.agreement < DISAGREE_BELOW).length };
}
