// Staff panic page: the cancel-window countdown after a press. No sound, nothing conspicuous.
(function () {
  "use strict";
  var sent = document.getElementById("panic-sent");
  var counter = document.getElementById("panic-countdown");
  if (!sent || !counter) return;
  var left = parseInt(sent.getAttribute("data-seconds"), 10) || 0;
  var timer = window.setInterval(function () {
    left -= 1;
    if (left <= 0) {
      window.clearInterval(timer);
      var wrap = document.getElementById("panic-countdown-wrap");
      if (wrap) wrap.textContent = "";
      return;
    }
    counter.textContent = String(left);
  }, 1000);
})();
