// Zone editor: draw and edit polygons on the camera's latest frame with the mouse (or a finger), pick the
// rules, save. Coordinates are normalised 0..1 (the SVG's viewBox is 0..1000 on both axes, stretched over
// the frame), exactly what the store keeps and the daemon reads.
"use strict";

(function () {
  const root = document.getElementById("zone-editor");
  if (!root) return;
  const camera = root.dataset.camera;
  const svg = document.getElementById("canvas");
  const NS = "http://www.w3.org/2000/svg";
  const SCALE = 1000;
  const CLOSE_PX = 14; // a click this close to the first corner closes the polygon
  const SNAP = 0.01;
  const $ = (id) => document.getElementById(id);
  const msg = (name) => root.dataset["msg" + name];

  let zones = JSON.parse($("zones-data").textContent);
  let current = null; // {code, place, polygon: [[x, y]], rules, isNew}
  let drawing = false;
  let dragging = null; // index of the corner being dragged

  function blankZone() {
    return {
      code: "", place: $("zone-place").value, polygon: [], anchor: "bottom_center", rules: {},
      static_change: null, reference_sha256: null, reference_at: null, isNew: true,
    };
  }

  // Corners within 1 % of the frame's edge snap onto it: a zone can reach the edge without pixel hunting.
  const snap = (v) => (v < SNAP ? 0 : v > 1 - SNAP ? 1 : Math.round(v * 10000) / 10000);

  function toPoint(event) {
    const rect = svg.getBoundingClientRect();
    const x = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
    const y = Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height));
    return [snap(x), snap(y)];
  }

  function el(name, attrs) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  }

  const pointsAttr = (polygon) => polygon.map(([x, y]) => `${x * SCALE},${y * SCALE}`).join(" ");

  function render() {
    svg.replaceChildren();
    for (const zone of zones) {
      if (current && zone.code === current.code && !current.isNew) continue;
      svg.append(el("polygon", { points: pointsAttr(zone.polygon), class: "zone other", "data-zone": zone.code }));
    }
    if (!current) return;
    const poly = current.polygon;
    const shape = drawing
      ? el("polyline", { points: pointsAttr(poly), class: "zone current drawing", id: "current-shape" })
      : el("polygon", { points: pointsAttr(poly), class: "zone current", id: "current-shape" });
    svg.append(shape);
    poly.forEach(([x, y], index) => {
      const handle = el("rect", {
        x: x * SCALE - 9, y: y * SCALE - 9, width: 18, height: 18,
        class: "handle" + (index === 0 ? " first" : ""), "data-index": index,
      });
      handle.addEventListener("pointerdown", (event) => startDrag(event, index));
      svg.append(handle);
    });
    $("point-count").textContent = msg("Points").replace("{count}", poly.length);
  }

  function startDrag(event, index) {
    event.stopPropagation();
    event.preventDefault();
    if (drawing && index === 0 && current.polygon.length >= 3) { finish(); return; }
    dragging = index;
    svg.setPointerCapture(event.pointerId);
  }

  svg.addEventListener("pointerdown", (event) => {
    if (!current || !drawing || dragging !== null) return;
    event.preventDefault();
    const point = toPoint(event);
    const poly = current.polygon;
    if (poly.length >= 3) {
      const rect = svg.getBoundingClientRect();
      const dx = (point[0] - poly[0][0]) * rect.width, dy = (point[1] - poly[0][1]) * rect.height;
      if (Math.hypot(dx, dy) <= CLOSE_PX) { finish(); return; }
    }
    poly.push(point);
    render();
  });
  svg.addEventListener("pointermove", (event) => {
    if (dragging === null) return;
    current.polygon[dragging] = toPoint(event);
    render();
  });
  const endDrag = () => { dragging = null; };
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);

  function finish() {
    if (current && current.polygon.length >= 3) drawing = false;
    render();
  }

  function showMessage(text, ok) {
    const box = $("zone-message");
    box.textContent = text;
    box.className = "flash " + (ok ? "ok" : "error");
    box.hidden = false;
  }

  function clearInvalid() {
    for (const node of root.querySelectorAll(".invalid")) node.classList.remove("invalid");
  }

  function load(zone) {
    current = zone ? JSON.parse(JSON.stringify(zone)) : blankZone();
    drawing = current.polygon.length < 3;
    $("zone-code").value = current.code;
    $("zone-code").readOnly = !current.isNew;
    if (current.place) $("zone-place").value = current.place;
    $("zone-anchor").value = current.anchor || "bottom_center";
    for (const rule of root.querySelectorAll(".rule")) {
      const spec = current.rules[rule.dataset.type];
      rule.querySelector(".rule-on").checked = Boolean(spec);
      rule.querySelector(".rule-dwell").value = spec ? spec.dwell_s : 60;
      rule.querySelector(".rule-schedule").value = spec ? spec.schedule || "" : "";
      // empty: the running model's working confidence (the rule stores null)
      rule.querySelector(".rule-confidence").value = spec && spec.min_confidence != null ? spec.min_confidence : "";
    }
    loadStatic(current);
    $("delete-zone").hidden = current.isNew;
    $("zone-message").hidden = true;
    clearInvalid();
    render();
  }

  function loadStatic(zone) {
    const spec = zone.static_change;
    $("static-on").checked = Boolean(spec);
    $("static-dwell").value = spec ? spec.dwell_s : 120;
    if (spec) $("static-report-as").value = spec.report_as;
    $("static-min-area").value = spec ? spec.min_area : 0.002;
    const state = $("reference-state");
    state.textContent = zone.reference_at
      ? state.dataset.msgSet.replace("{time}", zone.reference_at_text)
      : state.dataset.msgNone;
    // A reference belongs to a saved zone with static change (the store refuses it otherwise).
    $("set-reference").hidden = zone.isNew || !spec;
  }

  function collectStatic() {
    if (!$("static-on").checked) return null;
    return {
      dwell_s: Number($("static-dwell").value),
      report_as: $("static-report-as").value,
      min_area: Number($("static-min-area").value),
    };
  }

  function fillSelect(selected) {
    const select = $("zone-select");
    select.replaceChildren(select.options[0]);
    for (const zone of zones) {
      const option = new Option(zone.code, zone.code);
      option.translate = false;  // a zone is known by its code: an identifier, not words (translate="no")
      select.append(option);
    }
    select.value = selected || "";
  }

  // An empty field is null (the model's working confidence), never 0 or "". The browser refuses to submit
  // a value it cannot read as a number (the form is validated before "submit" fires).
  function confidenceOf(input) {
    const text = input.value.trim();
    return text === "" ? null : Number(text);
  }

  function collect() {
    const rules = {};
    for (const rule of root.querySelectorAll(".rule")) {
      if (!rule.querySelector(".rule-on").checked) continue;
      rules[rule.dataset.type] = {
        dwell_s: Number(rule.querySelector(".rule-dwell").value),
        schedule: rule.querySelector(".rule-schedule").value.trim(),
        min_confidence: confidenceOf(rule.querySelector(".rule-confidence")),
      };
    }
    return {
      place: $("zone-place").value, polygon: current.polygon, anchor: $("zone-anchor").value, rules,
      static_change: collectStatic(),
    };
  }

  function markInvalid(field) {
    if (!field) return;
    const rule = /rules\.([a-z0-9_]+)\.?(\w*)/.exec(field);
    if (rule) {
      const fields = { dwell_s: "dwell", schedule: "schedule", min_confidence: "confidence" };
      const what = fields[rule[2]] || "rule";
      const node = $(`${what}-${rule[1]}`);
      if (node) node.classList.add("invalid");
    } else if (field.includes("polygon")) svg.classList.add("invalid");
    else if (field.includes("place")) $("zone-place").classList.add("invalid");
  }

  async function send(url, fields) {
    const body = new FormData();
    const token = document.querySelector('meta[name="csrf-token"]').content;
    body.append("csrf_token", token);
    for (const [key, value] of Object.entries(fields)) body.append(key, value);
    const headers = { "X-CSRF-Token": token };  // the JSON API reads the header, console forms the field
    const response = await fetch(url, { method: "POST", body, credentials: "same-origin", headers });
    const data = await response.json().catch(() => ({ detail: response.statusText }));
    return { ok: response.ok, data };
  }

  $("zone-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearInvalid();
    const code = $("zone-code").value.trim();
    if (!code) { $("zone-code").classList.add("invalid"); showMessage(msg("NeedCode"), false); return; }
    if (!current || current.polygon.length < 3) { svg.classList.add("invalid"); showMessage(msg("NeedPolygon"), false); return; }
    drawing = false;
    const url = `/console/cameras/${encodeURIComponent(camera)}/zones/${encodeURIComponent(code)}`;
    const { ok, data } = await send(url, { zone: JSON.stringify(collect()) });
    if (!ok) { markInvalid(data.field); showMessage(data.detail, false); return; }
    zones = zones.filter((zone) => zone.code !== code).concat([data.saved]);
    zones.sort((a, b) => a.code.localeCompare(b.code));
    fillSelect(code);
    load(data.saved);
    showMessage(msg("Saved"), true);
  });

  $("delete-zone").addEventListener("click", async () => {
    if (!current || current.isNew || !window.confirm(msg("ConfirmDelete"))) return;
    const url = `/console/cameras/${encodeURIComponent(camera)}/zones/${encodeURIComponent(current.code)}/delete`;
    const { ok, data } = await send(url, {});
    if (!ok) { showMessage(data.detail, false); return; }
    zones = zones.filter((zone) => zone.code !== current.code);
    fillSelect("");
    load(null);
    showMessage(msg("Deleted"), true);
  });

  $("set-reference").addEventListener("click", async () => {
    if (!current || current.isNew) return;
    const url = `/console/cameras/${encodeURIComponent(camera)}/zones/${encodeURIComponent(current.code)}/reference`;
    const { ok, data } = await send(url, {});
    if (!ok) { showMessage(data.detail, false); return; }
    zones = zones.map((zone) => (zone.code === data.saved.code ? data.saved : zone));
    load(data.saved);
    showMessage($("reference-state").dataset.msgDone, true);
  });

  $("zone-select").addEventListener("change", (event) => {
    load(zones.find((zone) => zone.code === event.target.value) || null);
  });
  $("redraw").addEventListener("click", () => { current.polygon = []; drawing = true; render(); });
  $("undo-point").addEventListener("click", () => { current.polygon.pop(); drawing = true; render(); });
  $("finish").addEventListener("click", finish);

  fillSelect(zones.length ? zones[0].code : "");
  load(zones.length ? zones[0] : null);
})();
