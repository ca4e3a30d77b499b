// Draw a box on a case's evidence image with a mouse, a finger or a pen (pointer events): press, drag,
// release. The box fills the form's four fields (shares of the image, 0..1), which can also be typed.
"use strict";

(function () {
  const stage = document.getElementById("label-stage");
  const form = document.getElementById("label-form");
  if (!stage || !form) return;
  const svg = document.getElementById("label-canvas");
  const box = document.getElementById("label-new");
  const fields = ["x1", "y1", "x2", "y2"].map((name) => document.getElementById(`label-${name}`));
  let start = null;  // {x, y, id}: the pointer that is drawing

  const clamp = (v) => Math.min(1, Math.max(0, v));
  function share(event) {
    const rect = svg.getBoundingClientRect();
    return { x: clamp((event.clientX - rect.left) / rect.width), y: clamp((event.clientY - rect.top) / rect.height) };
  }

  function show(a, b) {
    const [x1, x2] = [Math.min(a.x, b.x), Math.max(a.x, b.x)];
    const [y1, y2] = [Math.min(a.y, b.y), Math.max(a.y, b.y)];
    box.setAttribute("x", (x1 * 1000).toFixed(1));
    box.setAttribute("y", (y1 * 1000).toFixed(1));
    box.setAttribute("width", ((x2 - x1) * 1000).toFixed(1));
    box.setAttribute("height", ((y2 - y1) * 1000).toFixed(1));
    [x1, y1, x2, y2].forEach((v, i) => { fields[i].value = v.toFixed(4); });
  }

  function fromFields() {
    const v = fields.map((f) => parseFloat(f.value));
    if (v.some(Number.isNaN)) return;
    show({ x: clamp(v[0]), y: clamp(v[1]) }, { x: clamp(v[2]), y: clamp(v[3]) });
  }
  fields.forEach((f) => f.addEventListener("change", fromFields));

  svg.addEventListener("pointerdown", (event) => {
    if (event.button !== undefined && event.button > 0) return;  // the left button, a finger or a pen
    event.preventDefault();
    try { svg.setPointerCapture(event.pointerId); } catch (_) { /* a synthetic pointer: nothing to capture */ }
    const at = share(event);
    start = { x: at.x, y: at.y, id: event.pointerId };
    show(at, at);
    stage.dataset.drawing = "1";
  });
  svg.addEventListener("pointermove", (event) => {
    if (!start || event.pointerId !== start.id) return;
    event.preventDefault();
    show(start, share(event));
  });
  const finish = (event) => {
    if (!start || event.pointerId !== start.id) return;
    show(start, share(event));
    start = null;
    delete stage.dataset.drawing;
    stage.dataset.drawn = "1";
  };
  svg.addEventListener("pointerup", finish);
  svg.addEventListener("pointercancel", () => { start = null; delete stage.dataset.drawing; });

  document.getElementById("label-clear").addEventListener("click", () => {
    fields.forEach((f) => { f.value = ""; });
    ["x", "y", "width", "height"].forEach((a) => box.setAttribute(a, "0"));
    delete stage.dataset.drawn;
  });

  form.addEventListener("submit", (event) => {
    const v = fields.map((f) => parseFloat(f.value));
    if (v.some(Number.isNaN) || v[2] - v[0] <= 0 || v[3] - v[1] <= 0) {
      event.preventDefault();
      window.alert(form.dataset.needBox);
    }
  });
})();
