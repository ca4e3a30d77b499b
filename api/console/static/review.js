// Review queue: j/k move, Enter/c confirm, x reject (1/2/3 reason), space select, bulk buttons,
// 1-9 re-code the current case to the type the legend shows for that key.
"use strict";

(function () {
  const queue = document.getElementById("queue");
  if (!queue) return;
  const canDecide = queue.dataset.canDecide === "true";
  const canRecode = queue.dataset.canRecode === "true";
  const legend = document.getElementById("recode-legend");
  const dialog = document.getElementById("reject-dialog");
  const flashArea = document.getElementById("flash");
  const countBadge = document.getElementById("queue-count");
  let current = 0;
  let rejectTargets = [];

  const cards = () => Array.from(queue.querySelectorAll(".case-card"));
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");

  // One message at a time: each outcome replaces the last instead of piling up.
  function flash(text, ok) {
    const line = document.createElement("p");
    line.className = "flash " + (ok ? "ok" : "error");
    line.textContent = text;
    flashArea.replaceChildren(line);
  }

  // The last card went: say the queue is empty (or that more wait on the next page) instead of a blank.
  function showEmptyIfDone() {
    if (cards().length || document.getElementById("queue-empty")) return;
    const left = Number(countBadge.dataset.count);
    const empty = document.createElement("p");
    empty.className = "card muted";
    empty.id = "queue-empty";
    empty.textContent = left > 0 ? fill(queue.dataset.msgPageDone, { count: left }) : queue.dataset.msgEmpty;
    if (left > 0) {
      const more = document.createElement("a");
      more.href = window.location.pathname + window.location.search.replace(/[?&]after=[^&]*/, "");
      more.id = "queue-reload";
      more.textContent = " " + queue.dataset.msgReload;
      empty.append(more);
    }
    queue.append(empty);
    document.querySelector(".bulkbar")?.remove();
  }

  function select(index) {
    const all = cards();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((card, i) => card.classList.toggle("current", i === current));
    all[current].focus({ preventScroll: true });
    all[current].scrollIntoView({ block: "nearest" });
  }

  const selectedIds = () =>
    cards().filter((c) => c.querySelector(".select:checked")).map((c) => c.dataset.caseId);
  const currentId = () => (cards()[current] || {}).dataset?.caseId;

  async function decide(ids, decision, reason, note) {
    if (!ids.length) return flash(queue.dataset.msgNothing, false);
    let results;
    try {
      ({ results } = await window.streetwatch.post("/console/review/decide", {
        decision, case_id: ids, reason: reason || "", note: note || "",
      }));
    } catch (error) {
      return flash(String(error.message || error), false);
    }
    const failed = results.filter((r) => !r.ok);
    for (const r of results) if (r.ok) dropCard(r.case_id);
    if (results.length === 1) {
      const r = results[0];
      const template = decision === "file" ? queue.dataset.msgFiled : queue.dataset.msgVoided;
      flash(r.ok ? fill(template, { id: r.case_id, status: r.status_label, unit: r.unit || "" })
        : fill(queue.dataset.msgFailed, { id: r.case_id, error: r.error }), r.ok);
    } else {  // a bulk action: one summary, naming the cases that did not move
      const summary = fill(queue.dataset.msgBulk, { ok: results.length - failed.length, failed: failed.length });
      const details = failed.map((r) => fill(queue.dataset.msgFailed, { id: r.case_id, error: r.error }));
      flash([summary, ...details].join(" "), !failed.length);
    }
    showEmptyIfDone();
    select(current);
  }

  function dropCard(id) {
    document.getElementById("case-" + id)?.remove();
    const count = Number(countBadge.dataset.count) - 1;
    countBadge.dataset.count = count;
    countBadge.textContent = fill(queue.dataset.msgCount, { count });
  }

  // Re-code one case: it stays in the queue under its new type, or leaves it when it merged into the
  // open case of that type at its place.
  async function recode(id, code) {
    if (!id || !code) return;
    let r;
    try {
      r = await window.streetwatch.post("/console/review/recode", { case_id: id, violation_code: code });
    } catch (error) {
      return flash(fill(queue.dataset.msgFailed, { id, error: String(error.message || error) }), false);
    }
    if (r.merged_into) {
      dropCard(id);
      showEmptyIfDone();
      flash(fill(queue.dataset.msgMerged, { id, code, target: r.merged_into }), true);
    } else {
      const card = document.getElementById("case-" + id);
      if (card) {
        card.dataset.violationCode = r.violation_code;
        card.querySelector(".violation").textContent = r.violation_name;
      }
      flash(fill(queue.dataset.msgRecoded, { id, code, name: r.violation_name }), true);
    }
    select(current);
  }

  const legendCode = (key) => legend?.querySelector(`.recode-key[data-key="${key}"]`)?.dataset.code;

  function openReject(ids) {
    if (!ids.length) return flash(queue.dataset.msgNothing, false);
    rejectTargets = ids;
    document.getElementById("reject-note").value = "";
    dialog.showModal();
  }

  function rejectWith(reason) {
    const note = document.getElementById("reject-note").value;
    dialog.close();
    decide(rejectTargets, "void", reason, note);
  }

  if (canDecide) {
    queue.addEventListener("click", (event) => {
      const card = event.target.closest(".case-card");
      if (!card) return;
      if (event.target.closest(".confirm")) decide([card.dataset.caseId], "file");
      else if (event.target.closest(".reject")) openReject([card.dataset.caseId]);
      else if (!event.target.closest("a, input")) select(cards().indexOf(card));
    });
    document.getElementById("bulk-confirm")?.addEventListener("click", () => decide(selectedIds(), "file"));
    document.getElementById("bulk-reject")?.addEventListener("click", () => openReject(selectedIds()));
    document.getElementById("select-all")?.addEventListener("change", (event) => {
      for (const box of queue.querySelectorAll(".select")) box.checked = event.target.checked;
    });
    for (const button of dialog.querySelectorAll(".reason")) {
      button.addEventListener("click", () => rejectWith(button.dataset.reason));
    }
    dialog.addEventListener("keydown", (event) => {
      const buttons = dialog.querySelectorAll(".reason");
      const n = Number(event.key);
      if (event.target.tagName !== "TEXTAREA" && n >= 1 && n <= buttons.length) {
        event.preventDefault();
        rejectWith(buttons[n - 1].dataset.reason);
      }
    });
  }

  if (canRecode && legend) {
    legend.addEventListener("click", (event) => {
      const button = event.target.closest(".recode-key");
      if (button) recode(currentId(), button.dataset.code);
    });
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || dialog?.open) return;
    if (window.streetwatch.typing(event)) return;
    const onCard = event.target === document.body || event.target.classList.contains("case-card");
    switch (event.key) {
      case "j": select(current + 1); break;
      case "k": select(current - 1); break;
      case "Enter": case "c":
        if (!canDecide || (event.key === "Enter" && !onCard)) return;
        if (currentId()) decide([currentId()], "file");
        break;
      case "x":
        if (canDecide) {
          const ids = selectedIds();
          openReject(ids.length ? ids : [currentId()].filter(Boolean));
        }
        break;
      case " ": {
        const box = cards()[current]?.querySelector(".select");
        if (!box || !onCard) return;
        box.checked = !box.checked;
        break;
      }
      default:
        if (!canRecode || !/^[1-9]$/.test(event.key) || !legendCode(event.key)) return;
        recode(currentId(), legendCode(event.key));
    }
    event.preventDefault();
  });

  select(0);
})();
