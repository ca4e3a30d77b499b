// streetwatch console: small helpers shared by every page (no framework, no build step).
"use strict";

window.streetwatch = (function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  // Post form fields to a console endpoint with the CSRF token; resolves to the parsed JSON answer.
  async function post(url, fields) {
    const body = new FormData();
    body.append("csrf_token", csrf());
    for (const [key, value] of Object.entries(fields)) {
      for (const item of Array.isArray(value) ? value : [value]) body.append(key, item);
    }
    const response = await fetch(url, {
      method: "POST", body, credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf() },  // the JSON API reads the header
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || response.statusText);
    return data;
  }

  // True when the user is typing: single-key shortcuts must not fire then.
  function typing(event) {
    const el = event.target;
    return el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName);
  }

  // Live deadline countdowns: <span class="countdown" data-deadline="ISO" data-left="…{time}…" data-over="…">.
  // The same words as api/console/formatting.py duration(): "1 小时 59 分" / "1 h 59 min".
  const UNITS = { zh: [" 天", " 小时", " 分"], en: [" d", " h", " min"] };
  function formatSpan(ms) {
    const [dayUnit, hourUnit, minuteUnit] = document.documentElement.lang.startsWith("zh") ? UNITS.zh : UNITS.en;
    const minutes = Math.floor(Math.abs(ms) / 60000);
    const d = Math.floor(minutes / 1440), h = Math.floor((minutes % 1440) / 60), m = minutes % 60;
    if (d) return d + dayUnit + (h ? " " + h + hourUnit : "");
    if (h) return h + hourUnit + (m ? " " + m + minuteUnit : "");
    return m + minuteUnit;
  }
  function tickCountdowns() {
    for (const el of document.querySelectorAll(".countdown[data-deadline]")) {
      const ms = Date.parse(el.dataset.deadline) - Date.now();
      const template = ms >= 0 ? el.dataset.left : el.dataset.over;
      el.textContent = template.replace("{time}", formatSpan(ms));
      el.classList.toggle("over", ms < 0);
    }
  }
  // Sizes computed on the server travel in data-* attributes: the Content-Security-Policy (style-src 'self')
  // forbids style="" in the markup, not styles set through the DOM.
  //   data-width="42.5" (bar width, %), data-fill="42.5" (the --w of a filled background, %),
  //   data-aspect="1280 / 720" (aspect-ratio).
  function applySizes(root) {
    const percent = (value) => `${Math.max(0, Math.min(100, Number(value) || 0))}%`;
    for (const el of root.querySelectorAll("[data-width]")) el.style.width = percent(el.dataset.width);
    for (const el of root.querySelectorAll("[data-fill]")) el.style.setProperty("--w", percent(el.dataset.fill));
    for (const el of root.querySelectorAll("[data-aspect]")) el.style.aspectRatio = el.dataset.aspect;
  }

  // No inline handlers under the CSP either: <button data-print> prints the page.
  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-print]")) window.print();
  });

  document.addEventListener("DOMContentLoaded", () => {
    applySizes(document);
    tickCountdowns();
    setInterval(tickCountdowns, 30000);
  });

  return { post, typing, tickCountdowns, applySizes };
})();
