// The segment condition builder (Alpine.js component). The tree has two levels: the root
// and/or group, whose items are conditions or groups of conditions; anything the builder
// cannot show (deeper nesting, rarer kinds) stays as a JSON item. The JSON beside the
// builder is the condition the server gets; editing it rebuilds the tree.
"use strict";

function segmentBuilder(initial, catalog, csrfToken) {
  const blank = {
    tag: () => ({ kind: "tag", present: true, tag: catalog.tags[0] || "" }),
    list: () => ({ kind: "list", list: catalog.lists[0] || "", status: "active" }),
    status: () => ({ kind: "status", values: ["subscribed"] }),
    field: () => ({ kind: "field", field: "email", op: "contains", value: "" }),
    event: () => ({ kind: "event", type: "email_opened", within_days: 30, at_least: 1, happened: true, where: [] }),
    group: () => ({ kind: "group", op: "or", items: [] }),
  };
  const fieldKind = (name) => (catalog.fields.find((f) => f.name === name) || { kind: "text" }).kind;
  const noValue = (op) => op === "is_set" || op === "not_set";

  function fieldValue(node) {
    const kind = fieldKind(node.field);
    const raw = node.value;
    if (node.op === "in" || node.op === "not_in") return String(raw).split(",").map((s) => s.trim()).filter(Boolean);
    if (kind === "number" || node.op === "within_days" || node.op === "not_within_days") return Number(raw);
    if (kind === "bool") return raw === true || raw === "true";
    return raw;
  }

  function toCondition(node) {
    switch (node.kind) {
      case "group": return { [node.op]: node.items.map(toCondition) };
      case "tag": return node.present ? { has_tag: node.tag } : { lacks_tag: node.tag };
      case "list": return { in_list: { list: node.list, status: node.status } };
      case "status": return { status: node.values };
      case "field": {
        const out = { field: node.field, op: node.op };
        if (!noValue(node.op)) out.value = fieldValue(node);
        return out;
      }
      case "event": {
        const event = { type: node.type, at_least: Number(node.at_least) || 1 };
        if (node.within_days) event.within_days = Number(node.within_days);
        if (!node.happened) event.happened = false;
        if (node.where.length) {
          event.where = node.where.map((w) => {
            const numeric = ["gt", "gte", "lt", "lte"].includes(w.op);
            return w.op === "is_set" ? { property: w.property, op: w.op }
              : { property: w.property, op: w.op, value: numeric ? Number(w.value) : w.value };
          });
        }
        return { event };
      }
      default: {
        try { return JSON.parse(node.json); } catch (e) { return { invalid_json: node.json }; }
      }
    }
  }

  function fromCondition(obj, depth) {
    const raw = () => ({ kind: "raw", json: JSON.stringify(obj) });
    if (!obj || typeof obj !== "object" || Array.isArray(obj)) return raw();
    const keys = Object.keys(obj);
    if (keys.length === 1 && (keys[0] === "and" || keys[0] === "or") && Array.isArray(obj[keys[0]]) && depth < 2) {
      return { kind: "group", op: keys[0], items: obj[keys[0]].map((item) => fromCondition(item, depth + 1)) };
    }
    if ("has_tag" in obj && typeof obj.has_tag === "string") return { kind: "tag", present: true, tag: obj.has_tag };
    if ("lacks_tag" in obj && typeof obj.lacks_tag === "string") return { kind: "tag", present: false, tag: obj.lacks_tag };
    if ("in_list" in obj) {
      const spec = typeof obj.in_list === "object" ? obj.in_list : { list: obj.in_list };
      return { kind: "list", list: String(spec.list), status: spec.status || "active" };
    }
    if ("status" in obj && keys.length === 1) return { kind: "status", values: [].concat(obj.status) };
    if ("field" in obj && "op" in obj) {
      const value = Array.isArray(obj.value) ? obj.value.join(", ") : (obj.value ?? "");
      return { kind: "field", field: obj.field, op: obj.op, value };
    }
    if ("event" in obj && typeof obj.event === "object") {
      const e = obj.event;
      const types = [].concat(e.type);
      if (types.length !== 1 || e.since || e.until) return raw();
      return {
        kind: "event", type: types[0], within_days: e.within_days || "", at_least: e.at_least || 1,
        happened: e.happened !== false,
        where: (e.where || []).map((w) => ({ property: w.property, op: w.op, value: w.value ?? "" })),
      };
    }
    return raw();
  }

  function rootOf(condition) {
    if (!condition) return { kind: "group", op: "and", items: [] };
    const node = fromCondition(condition, 0);
    return node.kind === "group" ? node : { kind: "group", op: "and", items: [node] };
  }

  return {
    catalog,
    root: rootOf(initial),
    json: "",
    jsonError: "",
    editingJson: false,
    timer: null,
    init() {
      this.json = this.render();
      this.$watch("root", () => {
        if (!this.editingJson) this.json = this.render();
        this.countSoon();
      });
      this.count();
    },
    render() {
      return this.root.items.length ? JSON.stringify(toCondition(this.root), null, 2) : "";
    },
    add(group, kind) { group.items.push(blank[kind]()); },
    remove(group, index) { group.items.splice(index, 1); },
    addWhere(node) { node.where.push({ property: "url", op: "contains", value: "" }); },
    opsFor(name) { return catalog.ops[fieldKind(name)]; },
    needsValue(op) { return !noValue(op); },
    inputType(node) {
      const kind = fieldKind(node.field);
      if (node.op === "within_days" || node.op === "not_within_days" || kind === "number") return "number";
      if (kind === "date") return "date";
      if (kind === "time" && (node.op === "before" || node.op === "after")) return "text";
      return "text";
    },
    jsonEdited() {
      this.editingJson = true;
      try {
        const parsed = this.json.trim() ? JSON.parse(this.json) : null;
        this.jsonError = "";
        this.root = rootOf(parsed);
      } catch (e) {
        this.jsonError = "Not valid JSON: " + e.message;
      }
      this.$nextTick(() => { this.editingJson = false; });
    },
    countSoon() {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.count(), 300);
    },
    count() {
      htmx.ajax("POST", "/admin/segments/count", {
        target: "#segment-count", swap: "innerHTML",
        values: { condition: this.json }, headers: { "X-CSRF-Token": csrfToken },
      });
    },
  };
}
window.segmentBuilder = segmentBuilder;
