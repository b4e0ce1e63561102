// The FSL calculator's live preview: as factor scores, population, floor area, the intangible
// adjustment or the agency level change, show the total and the level they would give. The
// server recomputes and stores the level on "Calculate and save": this is only a preview.
(function () {
  "use strict";
  var form = document.querySelector("form.asm-fsl-form[data-standard]");
  if (!form) return;
  var std;
  try { std = JSON.parse(form.getAttribute("data-standard")); } catch (e) { return; }
  var out = document.getElementById("fsl-preview");
  if (!out) return;

  function intOf(el) {
    if (!el || el.value === "") return null;
    var n = Number(el.value.replace(/,/g, ""));
    return Number.isInteger(n) ? n : NaN;
  }

  function derived(f, value) {
    for (var i = 0; i < f.upper_bounds.length; i++) {
      if (value <= f.upper_bounds[i]) return i + 1;
    }
    return f.upper_bounds.length + 1;
  }

  function compute() {
    var total = 0;
    for (var i = 0; i < std.factors.length; i++) {
      var f = std.factors[i];
      var score = null;
      if (f.derived_from) {
        var v = intOf(form.querySelector('[name="' + f.derived_from + '"]'));
        if (v !== null) {
          if (isNaN(v) || v < 0) return f.derived_from + ": must be a whole number, zero or more";
          score = derived(f, v);
        }
      } else {
        score = intOf(form.querySelector('[name="factor:' + f.key + '"]'));
      }
      if (score === null) return "Preview: give every factor a score";
      total += score;
    }
    var level = null;
    for (var j = 0; j < std.levels.length; j++) {
      if (std.levels[j].min <= total && total <= std.levels[j].max) level = j;
    }
    if (level === null) return "Preview: total " + total + " is outside the standard's table";
    var agency = form.querySelector('[name="agency_level"]');
    if (agency && agency.checked) return "Preview: total " + total + ", FSL " + std.agency_level + " (set by the agency)";
    var adj = intOf(form.querySelector('[name="intangible_adjustment"]')) || 0;
    var moved = Math.min(Math.max(level + adj, 0), std.levels.length - 1);
    var text = "Preview: total " + total + ", FSL " + std.levels[level].level;
    if (adj) text += ", adjusted to FSL " + std.levels[moved].level;
    return text + " (not saved yet)";
  }

  function update() { out.textContent = compute(); }
  form.addEventListener("input", update);
  form.addEventListener("change", update);
})();
