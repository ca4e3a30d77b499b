// Case search: bulk dispatch / re-assign without leaving the list. Each ticked case goes through the
// workflow on its own; the answer lists what moved and what not, and the moved rows show their new state.
// Without JavaScript the form posts and the server renders the same outcomes above the list.
"use strict";

(function () {
  const form = document.getElementById("bulk-form");
  const bar = document.getElementById("bulkbar");
  if (!form || !bar) return;
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");

  function outcomesBox() {
    let box = document.getElementById("bulk-outcomes");
    if (!box) {
      box = document.createElement("section");
      box.id = "bulk-outcomes";
      box.className = "card outcomes";
      box.setAttribute("aria-live", "polite");
      form.before(box);
    }
    box.replaceChildren();
    return box;
  }

  function show(results) {
    const box = outcomesBox();
    const ok = results.filter((r) => r.ok).length;
    const title = document.createElement("h2");
    title.textContent = fill(form.dataset.msgDone, { ok, failed: results.length - ok });
    const list = document.createElement("ul");
    for (const r of results) {
      const line = document.createElement("li");
      line.className = "flash " + (r.ok ? "ok" : "error");
      line.dataset.caseId = r.case_id;
      line.textContent = r.ok
        ? fill(form.dataset.msgOk, { id: r.case_id, status: r.status_label, unit: r.unit || "" })
        : fill(form.dataset.msgFailed, { id: r.case_id, error: r.error });
      list.append(line);
      const row = document.getElementById("row-" + r.case_id);
      if (r.ok && row) {
        const badge = row.querySelector(".status-badge");
        badge.className = `badge status-badge status-${r.status}`;
        badge.textContent = r.status_label;
        row.querySelector(".unit-cell").textContent = r.unit || "—";
        row.querySelector("input.select").checked = false;
      }
    }
    box.append(title, list);
    box.scrollIntoView({ block: "nearest" });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ids = Array.from(form.querySelectorAll("input.select:checked")).map((box) => box.value);
    const box = outcomesBox();
    if (!ids.length) {
      box.textContent = form.dataset.msgNothing;
      return;
    }
    const action = event.submitter?.value || "dispatch";
    try {
      const { results } = await window.streetwatch.post("/console/search/bulk", {
        action, case_id: ids, unit_id: document.getElementById("bulk-unit").value,
      });
      show(results);
    } catch (error) {
      box.textContent = String(error.message || error);
    }
  });
})();
