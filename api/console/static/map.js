// Case map: the search's cases (clustered) and the cameras, from /api/v1/case-search/map.
// Tiles only when the store has a tile URL (the city's own server); without one, or when it cannot be
// reached, the points still draw on the plain background.
"use strict";

(function () {
  const el = document.getElementById("map");
  if (!el || !window.L) return;
  const statusLine = document.getElementById("map-status");
  const countBadge = document.getElementById("map-count");
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");
  const DONE = new Set(["closed", "verified"]);

  // One colour class per point: overdue first, then where the case is in its life.
  function colour(point) {
    if (point.overdue) return "dot-overdue";
    if (point.status === "pending_review") return "dot-pending";
    if (point.status === "voided") return "dot-voided";
    if (DONE.has(point.status)) return "dot-done";
    return "dot-open";
  }

  const statusLabel = (status) => el.dataset["status" + status.replace(/(^|_)(\w)/g, (_, __, c) => c.toUpperCase())] || status;

  // maxZoom on the map itself: without a tile layer nothing else tells the clusterer how deep zoom goes.
  // Leaflet's own zoom control has English titles: ours carries the page's language.
  const map = L.map(el, { attributionControl: true, zoomControl: false, minZoom: 3, maxZoom: 19 });
  L.control.zoom({ zoomInTitle: el.dataset.msgZoomIn || "+", zoomOutTitle: el.dataset.msgZoomOut || "-" }).addTo(map);
  map.attributionControl.setPrefix(false);
  if (el.dataset.tileUrl) {
    L.tileLayer(el.dataset.tileUrl, { maxZoom: 19, attribution: el.dataset.tileAttribution || "" }).addTo(map);
  }
  map.setView([39.9, 116.4], 11);

  function caseMarker(point) {
    const title = `${fill(el.dataset.msgCase, { id: point.id })} · ${statusLabel(point.status)} · ${point.place_name}`;
    const link = document.createElement("a");
    link.href = `/console/cases/${point.id}`;
    link.className = `case-dot ${colour(point)}`;
    link.dataset.caseId = point.id;
    link.dataset.status = point.status;
    link.title = title;
    link.setAttribute("aria-label", title);
    const icon = L.divIcon({ html: link, className: "case-marker", iconSize: [16, 16] });
    return L.marker([point.lat, point.lon], { icon, title, keyboard: false });
  }

  function cameraMarker(camera) {
    const title = fill(el.dataset.msgCamera, { code: camera.code, name: camera.name, zones: camera.zones });
    const box = document.createElement("span");
    box.className = "camera-dot";
    box.dataset.camera = camera.code;
    box.title = title;
    // Anchored beside its spot, so the cluster of the place it watches stays readable.
    const icon = L.divIcon({ html: box, className: "camera-marker", iconSize: [18, 18], iconAnchor: [-10, 24] });
    return L.marker([camera.lat, camera.lon], { icon, title, zIndexOffset: 1000, keyboard: false });
  }

  async function load() {
    let data;
    try {
      const response = await fetch(el.dataset.pointsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      data = await response.json();
      if (!response.ok) throw new Error(data.detail || response.statusText);
    } catch (error) {
      statusLine.textContent = fill(el.dataset.msgFailed, { error: String(error.message || error) });
      return;
    }
    const clusters = L.markerClusterGroup({ animate: false, showCoverageOnHover: false, maxClusterRadius: 50 });
    for (const point of data.cases) clusters.addLayer(caseMarker(point));
    const cameras = L.layerGroup(data.cameras.map(cameraMarker));
    clusters.addTo(map);
    cameras.addTo(map);
    // Counts stop at 10,000 on the server (a million cases): shown as "10,000+".
    const shown = (n, capped) => (capped ? `${n.toLocaleString()}+` : String(n));
    countBadge.textContent = fill(countBadge.dataset.template, {
      count: shown(data.total, data.total_capped),
      unplaced: shown(data.unplaced, data.unplaced_capped),
    });
    if (data.cases.length < data.total) {
      statusLine.textContent = fill(el.dataset.msgTruncated, { shown: data.cases.length, total: shown(data.total, data.total_capped) });
    }
    const bounds = L.latLngBounds([
      ...data.cases.map((p) => [p.lat, p.lon]),
      ...data.cameras.map((c) => [c.lat, c.lon]),
    ]);
    if (bounds.isValid()) map.fitBounds(bounds.pad(0.2), { maxZoom: 17, animate: false });
    el.dataset.loaded = "true";
  }

  load();
})();
