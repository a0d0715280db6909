// The deployed backends as checkboxes, with their status, model and what each one reads (GET /v1/backends).

import { h, fill, typeLabel } from "./dom.js";
import { OptionsForm } from "./options-form.js";

export class BackendPicker {
  constructor(list, optionsBox, onChange) {
    this.list = list;
    this.optionsBox = optionsBox;
    this.onChange = onChange;
    this.backends = [];
    this.forms = new Map();
    this.mediaType = null;
  }

  set(listing) {
    this.backends = [...listing.backends, ...(listing.cascades || []).map((c) => asBackend(c, listing.backends))];
    const preferred = pickDefault(listing);
    fill(
      this.list,
      ...this.backends.map((b) => {
        const id = `backend-${b.name}`.replace(/[^\w-]/g, "_");
        const box = h("input", { type: "checkbox", id, name: "backend", value: b.name, onchange: () => this.changed() });
        box.checked = b.name === preferred;
        return h(
          "div",
          { class: `backend status-${b.status}`, dataset: { backend: b.name } },
          box,
          h(
            "label",
            { for: id },
            h("span", { class: "backend-name" }, b.name),
            h("span", { class: `badge ${b.status}` }, b.status),
            h("span", { class: "backend-model hint" }, [b.model && b.model.id, b.model && b.model.device, b.engine].filter(Boolean).join(" · ")),
            h("span", { class: "backend-reads hint" }, `reads ${b.media_types.map(typeLabel).join(", ") || "–"}`),
            b.detail ? h("span", { class: "backend-detail" }, b.detail) : null,
            h("span", { class: "backend-fit" }),
          ),
        );
      }),
    );
    this.forms = new Map(this.backends.map((b) => [b.name, new OptionsForm(b.name, b.options_schema)]));
    this.changed();
  }

  selected() {
    return [...this.list.querySelectorAll("input[name=backend]:checked")].map((i) => i.value);
  }

  /** Every media type some backend reads (what the file picker offers). */
  mediaTypes() {
    return [...new Set(this.backends.flatMap((b) => b.media_types))];
  }

  /** Note, per backend, whether it reads the chosen file (by the type sniffed from its bytes). */
  setFileType(mediaType) {
    this.mediaType = mediaType;
    this.changed();
  }

  changed() {
    const chosen = new Set(this.selected());
    for (const b of this.backends) {
      const row = this.list.querySelector(`[data-backend="${CSS.escape(b.name)}"]`);
      const fit = row?.querySelector(".backend-fit");
      if (fit) fit.textContent = this.mediaType && b.media_types.length && !b.media_types.includes(this.mediaType) && this.mediaType !== "application/zip" ? `does not read ${typeLabel(this.mediaType)}` : "";
    }
    fill(this.optionsBox, ...[...chosen].map((n) => this.forms.get(n)?.element).filter(Boolean));
    this.onChange(this.selected());
  }

  /** `{backend: options}` for the chosen backends that have options set. */
  options() {
    const out = {};
    for (const name of this.selected()) {
      const values = this.forms.get(name)?.values() || {};
      if (Object.keys(values).length) out[name] = values;
    }
    return out;
  }
}

function pickDefault(listing) {
  const ready = new Set(listing.backends.filter((b) => b.status === "ready").map((b) => b.name));
  if (ready.has(listing.default_backend)) return listing.default_backend;
  return listing.auto_order.find((n) => ready.has(n)) || [...ready][0] || null;
}

/** A cascade shown like a backend: ready when both of its backends are, reading what either reads. */
function asBackend(cascade, backends) {
  const parts = [cascade.first, cascade.then].map((n) => backends.find((b) => b.name === n)).filter(Boolean);
  const ready = parts.length === 2 && parts.every((b) => b.status === "ready");
  return {
    name: cascade.name,
    engine: "cascade",
    status: ready ? "ready" : "unavailable",
    model: null,
    media_types: [...new Set(parts.flatMap((b) => b.media_types))],
    detail: `${cascade.first} first, ${cascade.then} for pages that need it (${cascade.rules.join(", ")})`,
    options_schema: null,
  };
}
