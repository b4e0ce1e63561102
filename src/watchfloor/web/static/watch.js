// Watchfloor alarm queue: live over server-sent events, P1 visual and audible cue, keyboard.
// j/k or arrows move the selection, "a" acknowledges the selected incident, Enter opens it,
// "?" toggles the shortcut help. The sound is generated with WebAudio (no audio files); browsers
// allow it only after a user gesture, hence the visible sound toggle.
(function () {
  "use strict";
  var queue = document.getElementById("queue");
  if (!queue) return;
  var csrf = queue.getAttribute("data-csrf");
  var rowsUrl = queue.getAttribute("data-rows-url");
  var streamUrl = queue.getAttribute("data-stream-url");
  var liveState = document.getElementById("live-state");
  var soundBtn = document.getElementById("sound-toggle");
  var helpBtn = document.getElementById("help-toggle");
  var help = document.getElementById("shortcut-help");
  var p1Alert = document.getElementById("p1-alert");
  var ackStatus = document.getElementById("ack-status");
  var selectedId = null;
  var soundOn = window.localStorage.getItem("wf-sound") === "on";
  var audio = null;
  var refreshing = false;
  var refreshAgain = false;
  var knownP1 = {};

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#queue-body tr.qrow")); }

  function select(row, scroll) {
    rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
    if (!row) { selectedId = null; return; }
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    selectedId = row.getAttribute("data-id");
    if (scroll) { row.focus({ preventScroll: false }); }
  }

  function restoreSelection() {
    var all = rows();
    var found = null;
    all.forEach(function (r) { if (r.getAttribute("data-id") === selectedId) found = r; });
    select(found || all[0] || null, false);
  }

  function fmtAge(secs) {
    if (secs < 60) return secs + "s";
    if (secs < 3600) return Math.floor(secs / 60) + "m " + String(secs % 60).padStart(2, "0") + "s";
    if (secs < 86400) return Math.floor(secs / 3600) + "h " + String(Math.floor(secs % 3600 / 60)).padStart(2, "0") + "m";
    return Math.floor(secs / 86400) + "d " + Math.floor(secs % 86400 / 3600) + "h";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("td.age[data-since]").forEach(function (cell) {
      var since = Date.parse(cell.getAttribute("data-since"));
      if (!isNaN(since)) cell.textContent = fmtAge(Math.max(0, Math.floor((now - since) / 1000)));
    });
    document.querySelectorAll(".local-clock[data-tz]").forEach(function (el) {
      try {
        el.textContent = new Date().toLocaleTimeString("en-US", {
          timeZone: el.getAttribute("data-tz"), hour: "2-digit", minute: "2-digit", hour12: false, timeZoneName: "short"
        });
      } catch (e) { /* unknown zone: keep the server's text */ }
    });
  }

  function beep() {
    if (!soundOn) return;
    try {
      if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
      var t = audio.currentTime;
      [0, 0.25, 0.5].forEach(function (offset) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.type = "square";
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.0001, t + offset);
        gain.gain.exponentialRampToValueAtTime(0.3, t + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + offset + 0.2);
        osc.connect(gain); gain.connect(audio.destination);
        osc.start(t + offset); osc.stop(t + offset + 0.22);
      });
    } catch (e) { /* no audio device: the visual cue remains */ }
  }

  function showSound() {
    soundBtn.textContent = soundOn ? "Sound ON — click to mute" : "Sound OFF — click to turn on";
    soundBtn.setAttribute("aria-pressed", soundOn ? "true" : "false");
    soundBtn.classList.toggle("sound-off", !soundOn);
  }

  function flashP1(text) {
    document.body.classList.remove("p1-flash");
    void document.body.offsetWidth; // restart the animation
    document.body.classList.add("p1-flash");
    p1Alert.hidden = false;
    p1Alert.textContent = "▲ P1 LIFE SAFETY: " + text + "  (click to dismiss)";
    // one sound per burst: the cue, then its alarm row a moment later, beep once
    if (Date.now() - lastBeep > 2000) { lastBeep = Date.now(); beep(); }
  }
  var lastBeep = 0;

  function noteP1s() {
    rows().forEach(function (r) {
      if (r.getAttribute("data-priority") === "1") knownP1[r.getAttribute("data-id")] = true;
    });
  }

  function refresh() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    fetch(rowsUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (resp) {
        if (resp.redirected && resp.url.indexOf("/login") !== -1) { window.location.reload(); return null; }
        return resp.ok ? resp.text() : null;
      })
      .then(function (html) {
        if (html === null || html === undefined) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        ["health-slot", "queue-summary", "queue-table"].forEach(function (id) {
          var fresh = doc.getElementById(id);
          var old = document.getElementById(id);
          if (fresh && old) old.replaceWith(fresh);
        });
        var newP1 = [];
        rows().forEach(function (r) {
          var id = r.getAttribute("data-id");
          if (r.getAttribute("data-priority") === "1" && !knownP1[id] && r.getAttribute("data-status") === "new") {
            r.classList.add("new-arrival");
            var cell = r.children[2];
            var where = cell ? (cell.childNodes[0].textContent + (cell.childNodes[1] ? cell.childNodes[1].textContent : "")).trim() : "";
            newP1.push(r.querySelector(".qtitle").textContent + (where ? " at " + where : ""));
          }
        });
        noteP1s();
        restoreSelection();
        tick();
        if (newP1.length) flashP1(newP1.join("; "));
      })
      .catch(function () { /* the next message or the reconnect refreshes again */ })
      .then(function () {
        refreshing = false;
        if (refreshAgain) { refreshAgain = false; refresh(); }
      });
  }

  var cued = {}; // event ids whose P1 cue has been given

  function connect() {
    if (!window.EventSource) { liveState.textContent = "Live updates unsupported: reload to update"; return; }
    var source = new EventSource(streamUrl);
    source.addEventListener("hello", function () {
      liveState.textContent = "● Live";
      liveState.className = "live-state live-on";
      refresh(); // catch up with anything missed while connecting
    });
    // cue: a life-safety event is durable and its alarm is being raised: alert now; the alarm
    // event follows with the row (its cue is not repeated)
    source.addEventListener("cue", function (ev) {
      try {
        var data = JSON.parse(ev.data);
        if (Number(data.priority) === 1 && !cued[data.event_id]) {
          cued[data.event_id] = true;
          flashP1((data.title || "life-safety alarm") + (data.facility_code ? " at " + data.facility_code : ""));
        }
      } catch (e) { /* keep going */ }
    });
    source.addEventListener("alarm", function (ev) {
      try {
        var data = JSON.parse(ev.data);
        if (Number(data.priority) === 1 && !cued[data.event_id]) flashP1((data.title || "life-safety alarm") + (data.facility_code ? " at " + data.facility_code : ""));
      } catch (e) { /* keep going */ }
      refresh();
    });
    source.addEventListener("incident", function () { refresh(); });
    source.addEventListener("reload", function () { source.close(); window.location.reload(); });
    source.addEventListener("unavailable", function () {
      liveState.textContent = "○ Live updates unavailable: refreshing every few seconds";
      liveState.className = "live-state live-off";
      refresh();
    });
    source.onerror = function () {
      liveState.textContent = "○ Reconnecting… (queue may be stale)";
      liveState.className = "live-state live-off";
    };
  }

  function acknowledge() {
    var row = rows().filter(function (r) { return r.getAttribute("data-id") === selectedId; })[0];
    if (!row) return;
    if (row.getAttribute("data-can-ack") !== "1") { ackStatus.textContent = "You cannot acknowledge at this facility."; return; }
    if (row.getAttribute("data-status") !== "new") { ackStatus.textContent = "Incident " + selectedId + " is already acknowledged."; return; }
    var body = new URLSearchParams({ csrf_token: csrf, action: "acknowledge" });
    ackStatus.textContent = "Acknowledging incident " + selectedId + "…";
    fetch("/incidents/" + encodeURIComponent(selectedId) + "/action", {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf }
    }).then(function (resp) {
      return resp.json().then(function (data) {
        ackStatus.textContent = resp.ok ? "Incident " + selectedId + ": " + data.message : "Not acknowledged: " + data.message;
      });
    }).catch(function () { ackStatus.textContent = "Not acknowledged: the server did not answer."; })
      .then(refresh);
  }

  function typing(t) {
    var tag = (t && t.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || (t && t.isContentEditable);
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    var all = rows();
    var idx = all.findIndex(function (r) { return r.getAttribute("data-id") === selectedId; });
    if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); select(all[Math.min(all.length - 1, idx + 1)] || null, true); }
    else if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); select(all[Math.max(0, idx - 1)] || null, true); }
    else if (ev.key === "a") { ev.preventDefault(); acknowledge(); }
    else if (ev.key === "Enter" && ev.target.tagName !== "A" && ev.target.tagName !== "BUTTON") {
      var row = all[idx];
      if (row) { ev.preventDefault(); window.location.href = row.getAttribute("data-href"); }
    }
    else if (ev.key === "?") { ev.preventDefault(); help.hidden = !help.hidden; helpBtn.setAttribute("aria-expanded", String(!help.hidden)); }
  });

  queue.addEventListener("click", function (ev) {
    var row = ev.target.closest && ev.target.closest("tr.qrow");
    if (row) select(row, false);
  });
  soundBtn.addEventListener("click", function () {
    soundOn = !soundOn;
    window.localStorage.setItem("wf-sound", soundOn ? "on" : "off");
    showSound();
    if (soundOn) beep();
  });
  helpBtn.addEventListener("click", function () { help.hidden = !help.hidden; helpBtn.setAttribute("aria-expanded", String(!help.hidden)); });
  p1Alert.addEventListener("click", function () { p1Alert.hidden = true; });

  showSound();
  noteP1s();
  restoreSelection();
  tick();
  window.setInterval(tick, 1000);
  connect();
})();
