// Watchfloor alert dashboard: refreshes the counts and the delivery table every few seconds
// (polling /alerts/{id}/rows), keeping the page's focus and scroll position.
(function () {
  "use strict";
  var box = document.getElementById("nt-dashboard");
  if (!box) return;
  var url = box.getAttribute("data-rows-url");
  var live = document.getElementById("nt-live");
  var busy = false;
  function refresh() {
    if (busy || document.hidden) return;
    if (box.contains(document.activeElement) && document.activeElement.tagName === "BUTTON") return;
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        box.innerHTML = html;
        if (live) live.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
      })
      .catch(function () {
        if (live) live.textContent = "Live updates paused: cannot reach the server. Retrying.";
      })
      .then(function () { busy = false; });
  }
  setInterval(refresh, 3000);
})();
