// Type-ahead for the camera and place filters (review queue, case search): a city has thousands of them, so
// the page ships an empty <datalist> per field and fills it with the few that start with what was typed
// (GET data-suggest-url, default /console/review/suggest; same-origin JSON). Without JavaScript the fields
// are plain text filters.
"use strict";

(function () {
  for (const input of document.querySelectorAll("input[data-suggest]")) {
    const list = document.getElementById(input.getAttribute("list"));
    let timer = null;
    let asked = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const q = input.value.trim();
        if (q === asked) return;
        asked = q;
        const params = new URLSearchParams({ field: input.dataset.suggest, q });
        try {
          const response = await fetch((input.dataset.suggestUrl || "/console/review/suggest") + "?" + params, { credentials: "same-origin" });
          if (!response.ok || asked !== q) return;
          const options = (await response.json()).map((item) => {
            const option = document.createElement("option");
            option.value = item.value;
            if (item.label !== item.value) option.label = item.label;
            return option;
          });
          list.replaceChildren(...options);
        } catch (error) {
          // offline or logged out: the field still filters by what was typed
        }
      }, 150);
    });
  }
})();
