// A backend's per-request options as form fields, built from the JSON schema the backend publishes in
// /v1/backends (`options_schema`): nothing about DeepSeek's modes, MinerU's tiers or RapidOCR's switches is
// written here. Only fields a person changed are sent; the rest keep the deployment's defaults.

import { h } from "./dom.js";

export class OptionsForm {
  constructor(backend, schema) {
    this.backend = backend;
    this.fields = [];
    const props = (schema && schema.properties) || {};
    const rows = Object.entries(props).map(([name, prop]) => this.field(name, prop));
    this.element = h(
      "details",
      { class: "options-form", dataset: { backend } },
      h("summary", {}, `${backend} options`, h("span", { class: "hint" }, rows.length ? ` (${rows.length})` : " (none)")),
      rows.length ? h("div", { class: "options-fields" }, rows) : h("p", { class: "hint" }, "This backend takes no options."),
    );
  }

  field(name, prop) {
    const { type, nullable, inner } = resolve(prop);
    const id = `opt-${this.backend}-${name}`.replace(/[^\w-]/g, "_");
    const def = prop.default;
    const title = prop.title || name;
    const help = prop.description ? h("small", { class: "hint", id: `${id}-help` }, prop.description) : null;
    const described = help ? `${id}-help` : false;
    let input;
    let read;
    if (inner.enum) {
      input = h(
        "select",
        { id, "aria-describedby": described },
        h("option", { value: "" }, `default${def === null || def === undefined ? "" : ` (${def})`}`),
        inner.enum.map((v) => h("option", { value: JSON.stringify(v) }, String(v))),
      );
      read = () => (input.value === "" ? undefined : JSON.parse(input.value));
    } else if (type === "boolean" && (nullable || def === null || def === undefined)) {
      input = h("select", { id, "aria-describedby": described }, h("option", { value: "" }, "default"), h("option", { value: "true" }, "on"), h("option", { value: "false" }, "off"));
      read = () => (input.value === "" ? undefined : input.value === "true");
    } else if (type === "boolean") {
      input = h("input", { id, type: "checkbox", "aria-describedby": described });
      input.checked = Boolean(def);
      read = () => (input.checked === Boolean(def) ? undefined : input.checked);
      this.fields.push({ name, read });
      return h("div", { class: "field-row check" }, input, h("label", { for: id }, title), help);
    } else if (type === "integer" || type === "number") {
      input = h("input", { id, type: "number", step: type === "integer" ? "1" : "any", min: inner.minimum, max: inner.maximum, placeholder: def ?? "default", "aria-describedby": described });
      read = () => (input.value === "" ? undefined : Number(input.value));
    } else if (type === "string") {
      input = h("input", { id, type: "text", placeholder: def ?? "default", autocomplete: "off", "aria-describedby": described });
      read = () => (input.value === "" ? undefined : input.value);
    } else {
      return null; // a shape this form does not know; the option keeps its default
    }
    this.fields.push({ name, read });
    return h("div", { class: "field-row" }, h("label", { for: id }, title), input, help);
  }

  /** The options a person set, as the backend's `options` object. */
  values() {
    const out = {};
    for (const { name, read } of this.fields) {
      const v = read();
      if (v !== undefined) out[name] = v;
    }
    return out;
  }
}

function resolve(prop) {
  if (Array.isArray(prop.anyOf)) {
    const others = prop.anyOf.filter((p) => p.type !== "null");
    const inner = others[0] || {};
    return { type: inner.type, nullable: others.length < prop.anyOf.length, inner };
  }
  return { type: prop.type, nullable: false, inner: prop };
}
