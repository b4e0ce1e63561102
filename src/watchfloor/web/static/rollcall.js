// Watchfloor roll-call board: live tally over server-sent events, the lists refreshed as answers
// arrive, and the keyboard: j/k (or arrows) move the selection, "s" marks the selected person
// safe, "h" marks them as needing help.
(function () {
  "use strict";
  var board = document.getElementById("rc-board");
  if (!board) return;
  var id = board.getAttribute("data-id");
  var csrf = board.getAttribute("data-csrf");
  var rowsUrl = board.getAttribute("data-rows-url");
  var streamUrl = board.getAttribute("data-stream-url");
  var answerUrl = board.getAttribute("data-answer-url");
  var liveState = document.getElementById("live-state");
  var statusBox = document.getElementById("rc-status");
  var version = parseInt(board.getAttribute("data-version") || "0", 10);
  var selected = null;
  var refreshTimer = null;
  var refreshing = false;
  var again = false;

  function setLive(text) { if (liveState) liveState.textContent = text; }
  function say(text) { if (statusBox) statusBox.textContent = text; }
  function rows() { return Array.prototype.slice.call(board.querySelectorAll("tr.rc-entry")); }

  function select(row) {
    rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
    if (!row) { selected = null; return; }
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    selected = row.getAttribute("data-entry");
    row.focus({ preventScroll: false });
  }

  function restore() {
    if (!selected) return;
    rows().forEach(function (r) {
      if (r.getAttribute("data-entry") === selected) { r.classList.add("selected"); r.setAttribute("aria-selected", "true"); }
    });
  }

  function setTally(t) {
    ["need_help", "no_answer", "safe", "total"].forEach(function (k) {
      var el = document.getElementById("tally-" + k);
      if (el && t && typeof t[k] === "number") el.textContent = String(t[k]);
    });
    var tile = board.querySelector(".rc-tile-help");
    if (tile && t) tile.classList.toggle("rc-alarm", t.need_help > 0);
  }

  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(rowsUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) {
          board.innerHTML = html;
          restore();
        }
      })
      .catch(function () {})
      .then(function () {
        refreshing = false;
        if (again) { again = false; scheduleRefresh(); }
      });
  }

  // the tally updates at once from each message; the lists are re-read at most every 0.4 s, and
  // on a large site's board (hundreds of people) at most every 3 s, so a mass roll call does not
  // have every console re-reading thousands of rows several times a second
  var lastRefresh = 0;
  function scheduleRefresh() {
    if (refreshTimer) return;
    var gap = rows().length > 500 ? 3000 : 400;
    var wait = Math.max(100, lastRefresh + gap - Date.now());
    refreshTimer = window.setTimeout(function () { refreshTimer = null; lastRefresh = Date.now(); refresh(); }, wait);
  }

  function onUpdate(ev) {
    var data;
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    if (String(data.roll_call_id) !== id) return;
    if (typeof data.version === "number" && data.version <= version) return;
    version = data.version || version;
    setTally(data.tally);
    board.setAttribute("data-version", String(version));
    if (data.what === "closed") { window.location.reload(); return; }
    if (data.entry && data.entry.answer === "need_help") say(data.entry.name + " needs help.");
    scheduleRefresh();
  }

  function connect() {
    if (!window.EventSource) { setLive("Live updates unavailable: reload to refresh"); return; }
    var es = new EventSource(streamUrl);
    es.addEventListener("hello", function () { setLive("Live"); refresh(); });
    es.addEventListener("rollcall", onUpdate);
    es.addEventListener("unavailable", function () { setLive("Live updates paused — retrying"); });
    es.addEventListener("reload", function () { es.close(); refresh(); window.setTimeout(connect, 1000); });
    es.onerror = function () { setLive("Reconnecting…"); };
  }

  function mark(answer) {
    if (!selected || board.getAttribute("data-state") !== "open") return;
    var body = new URLSearchParams();
    body.set("answer", answer);
    body.set("csrf_token", csrf);
    fetch(answerUrl + selected + "/answer", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString()
    }).then(function (r) { return r.json(); })
      .then(function (j) { say(j.message || ""); if (j.tally) setTally(j.tally); refresh(); })
      .catch(function () { say("Could not record the answer: check the connection and try again."); });
  }

  board.addEventListener("click", function (e) {
    var row = e.target.closest ? e.target.closest("tr.rc-entry") : null;
    if (row && !(e.target.closest && e.target.closest("button"))) select(row);
  });

  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    var all = rows();
    var idx = -1;
    all.forEach(function (r, i) { if (r.getAttribute("data-entry") === selected) idx = i; });
    if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); select(all[Math.min(all.length - 1, idx + 1)] || null); }
    else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); select(all[Math.max(0, idx - 1)] || null); }
    else if (e.key === "s") { e.preventDefault(); mark("safe"); }
    else if (e.key === "h") { e.preventDefault(); mark("need_help"); }
  });

  connect();
})();
