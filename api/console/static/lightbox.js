// Evidence images open in a lightbox instead of replacing the page with the raw JPEG: zoom with the
// mouse wheel, the +/− buttons, the keyboard (+, −, 0) or two fingers; drag to pan; Esc or Close closes.
// The links keep their href, so without JavaScript (or with a modifier key) the image opens as before.
"use strict";

(function () {
  const MIN = 1, MAX = 8, STEP = 1.25;
  const dialog = document.getElementById("lightbox");
  if (!dialog) return;
  const image = document.getElementById("lightbox-image");
  const stage = dialog.querySelector(".lightbox-stage");
  const readout = document.getElementById("lightbox-scale");
  const view = { scale: 1, x: 0, y: 0 };
  const pointers = new Map();  // pointerId -> {x, y}: one pans, two pinch
  let pinch = null;  // {distance, scale} when two fingers went down

  function apply() {
    image.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    readout.textContent = `${Math.round(view.scale * 100)}%`;
    dialog.dataset.scale = view.scale.toFixed(3);
  }

  // Zoom to `scale` keeping the stage point (cx, cy) (relative to the stage's centre) where it is.
  function zoomTo(scale, cx = 0, cy = 0) {
    const next = Math.min(MAX, Math.max(MIN, scale));
    const ratio = next / view.scale;
    view.x = cx - (cx - view.x) * ratio;
    view.y = cy - (cy - view.y) * ratio;
    view.scale = next;
    if (next === MIN) view.x = view.y = 0;
    apply();
  }

  function centred(event) {
    const box = stage.getBoundingClientRect();
    return [event.clientX - box.left - box.width / 2, event.clientY - box.top - box.height / 2];
  }

  function open(link) {
    const thumb = link.querySelector("img");
    image.src = link.href;
    image.alt = thumb ? thumb.alt : "";
    view.scale = 1; view.x = view.y = 0;
    apply();
    dialog.showModal();
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-lightbox]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    open(link);
  });

  dialog.addEventListener("click", (event) => {
    const button = event.target.closest("[data-zoom]");
    if (button) {
      const what = button.dataset.zoom;
      if (what === "in") zoomTo(view.scale * STEP);
      else if (what === "out") zoomTo(view.scale / STEP);
      else if (what === "reset") zoomTo(1);
      else if (what === "close") dialog.close();
      return;
    }
    if (event.target === dialog) dialog.close();  // the backdrop
  });

  dialog.addEventListener("keydown", (event) => {
    if (event.key === "+" || event.key === "=") zoomTo(view.scale * STEP);
    else if (event.key === "-") zoomTo(view.scale / STEP);
    else if (event.key === "0") zoomTo(1);
  });  // Esc: the dialog's own cancel closes it

  dialog.addEventListener("close", () => { image.removeAttribute("src"); });

  stage.addEventListener("wheel", (event) => {
    event.preventDefault();
    const [cx, cy] = centred(event);
    zoomTo(view.scale * (event.deltaY < 0 ? STEP : 1 / STEP), cx, cy);
  }, { passive: false });

  stage.addEventListener("pointerdown", (event) => {
    try { stage.setPointerCapture(event.pointerId); } catch (_) { /* a synthetic pointer: nothing to capture */ }
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      pinch = { distance: Math.hypot(a.x - b.x, a.y - b.y) || 1, scale: view.scale };
    }
  });
  stage.addEventListener("pointermove", (event) => {
    const last = pointers.get(event.pointerId);
    if (!last) return;
    const now = { x: event.clientX, y: event.clientY };
    pointers.set(event.pointerId, now);
    if (pointers.size === 2 && pinch) {
      const [a, b] = [...pointers.values()];
      const mid = centred({ clientX: (a.x + b.x) / 2, clientY: (a.y + b.y) / 2 });
      zoomTo(pinch.scale * Math.hypot(a.x - b.x, a.y - b.y) / pinch.distance, mid[0], mid[1]);
    } else if (pointers.size === 1 && view.scale > MIN) {
      view.x += now.x - last.x;
      view.y += now.y - last.y;
      apply();
    }
  });
  const lift = (event) => {
    pointers.delete(event.pointerId);
    if (pointers.size < 2) pinch = null;
  };
  stage.addEventListener("pointerup", lift);
  stage.addEventListener("pointercancel", lift);
})();
