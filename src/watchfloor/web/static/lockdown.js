// Lockdown pages: live progress over server-sent events (/lockdowns/stream). On the detail page
// a message about this lockdown re-reads its door list (an HTML fragment); on the list page any
// lockdown message re-reads the active lockdowns. Falls back to a slow poll when the stream is
// unavailable, so the numbers never go stale.
(function () {
  "use strict";
  var detail = document.getElementById("ld-live");
  var cards = document.getElementById("ld-cards");
  var target = detail || cards;
  if (!target) return;
  var url = detail ? detail.getAttribute("data-doors-url") : cards.getAttribute("data-cards-url");
  var streamUrl = target.getAttribute("data-stream-url");
  var lockdownId = detail ? detail.getAttribute("data-lockdown-id") : null;
  var liveState = document.getElementById("live-state");
  var busy = false, again = false, timer = null;

  function say(text) { if (liveState) liveState.textContent = text; }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.text(); })
      .then(function (html) {
        var focused = document.activeElement && document.activeElement.id;
        target.innerHTML = html;
        if (focused) { var el = document.getElementById(focused); if (el) el.focus(); }
      })
      .catch(function () { say("Could not refresh; retrying…"); })
      .then(function () {
        busy = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(function () { timer = null; refresh(); }, 150);
  }

  function finished() {
    var status = target.querySelector("[data-state]");
    return status && status.getAttribute("data-state") === "lifted";
  }

  var poll = setInterval(function () { if (!finished()) refresh(); }, 10000);

  if (!window.EventSource || !streamUrl) return;
  var source = new EventSource(streamUrl);
  source.addEventListener("hello", function () { say("Live"); refresh(); });
  source.addEventListener("unavailable", function () { say("Live updates unavailable; refreshing every 10 s"); });
  source.addEventListener("reload", function () { refresh(); });
  source.addEventListener("lockdown", function (ev) {
    if (!lockdownId) { schedule(); return; }
    try {
      var data = JSON.parse(ev.data);
      if (String(data.lockdown_id) === lockdownId) schedule();
    } catch (e) { schedule(); }
  });
  source.onerror = function () { say("Reconnecting…"); };
  window.addEventListener("beforeunload", function () { clearInterval(poll); source.close(); });
})();
