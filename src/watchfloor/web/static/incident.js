// Incident page: re-reads the page when its incident changes (live over server-sent events).
(function () {
  "use strict";
  var root = document.getElementById("incident-live");
  if (!root || !window.EventSource) return;
  var id = root.getAttribute("data-incident");
  var pending = false;
  function refresh() {
    if (pending) return;
    pending = true;
    fetch(window.location.pathname, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("incident-live");
        var active = document.activeElement;
        var typingNow = active && (active.tagName === "TEXTAREA" || active.tagName === "INPUT" || active.tagName === "SELECT");
        if (fresh && !typingNow) document.getElementById("incident-live").replaceWith(fresh);
        else if (fresh) {
          var tl = fresh.querySelector("#timeline");
          if (tl) document.getElementById("timeline").replaceWith(tl);
        }
      })
      .catch(function () {})
      .then(function () { pending = false; });
  }
  var source = new EventSource("/watch/stream");
  function mine(ev) {
    try { var d = JSON.parse(ev.data); return String(d.incident_id) === id || String(d.id) === id; } catch (e) { return false; }
  }
  source.addEventListener("incident", function (ev) { if (mine(ev)) refresh(); });
  source.addEventListener("alarm", function (ev) { if (mine(ev)) refresh(); });
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var t = ev.target.tagName;
    if (t === "INPUT" || t === "TEXTAREA" || t === "SELECT") return;
    if (ev.key === "a") {
      var form = document.querySelector("form input[name=action][value=acknowledge]");
      if (form) { ev.preventDefault(); form.form.submit(); }
    }
  });
})();
