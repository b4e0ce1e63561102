// Watchfloor console: keyboard shortcuts. "/" focuses search; "g" then "f" or "m" goes to the
// facility list or the map. Nothing here is needed to use the console; it only saves keystrokes.
(function () {
  "use strict";
  var pendingG = false;
  var gTimer = null;

  function typing(target) {
    if (!target) return false;
    var tag = (target.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "/") {
      var search = document.getElementById("search");
      if (search) {
        event.preventDefault();
        search.focus();
        search.select();
      } else if (document.querySelector(".mainnav")) {
        event.preventDefault();
        window.location.href = "/?focus=search";
      }
      return;
    }
    if (pendingG) {
      pendingG = false;
      window.clearTimeout(gTimer);
      if (event.key === "f") window.location.href = "/";
      else if (event.key === "m") window.location.href = "/map";
      else if (event.key === "w") window.location.href = "/watch";
      return;
    }
    if (event.key === "g" && document.querySelector(".mainnav")) {
      pendingG = true;
      gTimer = window.setTimeout(function () { pendingG = false; }, 1500);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (new URLSearchParams(window.location.search).get("focus") === "search") {
      var search = document.getElementById("search");
      if (search) search.focus();
    }
  });
})();
