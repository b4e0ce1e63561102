// The facility map: Leaflet with no tile server. The base layer is US state outlines shipped with
// Watchfloor (static/geo/us-states.json); markers show each facility's health with a colour, a
// symbol and words in the popup and the side list, so colour is never the only signal.
(function () {
  "use strict";
  var SYMBOL = { offline: "\u2715", trouble: "!", unknown: "?", ok: "\u2713" };
  var RANK = { offline: 0, trouble: 1, unknown: 2, ok: 3 };
  var CONUS = L.latLngBounds([24.3, -125.0], [49.5, -66.9]);

  var el = document.getElementById("map");
  var summary = document.getElementById("map-summary");
  var attention = document.getElementById("map-attention");

  var map = L.map(el, {
    zoomSnap: 0.25,
    fadeAnimation: false, // popups appear at once: nothing half-visible under stress
    minZoom: 2,
    maxZoom: 12,
    worldCopyJump: false,
    keyboard: true,
    attributionControl: true,
  });
  map.attributionControl.setPrefix(false);
  map.fitBounds(CONUS);

  function text(tag, value, className) {
    var node = document.createElement(tag);
    node.textContent = value;
    if (className) node.className = className;
    return node;
  }

  function popup(f) {
    var box = document.createElement("div");
    var link = text("a", f.name + " (" + f.code + ")");
    link.href = f.url;
    box.appendChild(link);
    box.appendChild(document.createElement("br"));
    box.appendChild(text("span", [f.city, f.state].filter(Boolean).join(", ") + " \u00b7 " + f.kind));
    box.appendChild(document.createElement("br"));
    var badge = text("span", " " + f.health_label, "badge health-" + f.health);
    badge.insertBefore(text("span", SYMBOL[f.health], "badge-icon"), badge.firstChild);
    box.appendChild(badge);
    var counts = f.devices + " devices";
    if (f.offline) counts += ", " + f.offline + " offline";
    if (f.trouble) counts += ", " + f.trouble + " in trouble";
    box.appendChild(document.createElement("br"));
    box.appendChild(text("span", counts + " \u00b7 local time " + f.local_time));
    return box;
  }

  function fail(message) {
    summary.textContent = message;
    summary.classList.add("summary-alert");
  }

  var states = fetch(el.dataset.states, { credentials: "same-origin" }).then(function (r) {
    if (!r.ok) throw new Error("state outlines " + r.status);
    return r.json();
  });
  var facilities = fetch(el.dataset.facilities, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  }).then(function (r) {
    if (r.status === 401) {
      window.location.href = "/login?next=/map";
      throw new Error("logged out");
    }
    if (!r.ok) throw new Error("facilities " + r.status);
    return r.json();
  });

  states
    .then(function (geo) {
      L.geoJSON(geo, {
        interactive: false,
        style: { color: "#5b7894", weight: 1, fillColor: "#1b2a38", fillOpacity: 1 },
      }).addTo(map);
      map.attributionControl.addAttribution("State outlines: U.S. Census Bureau (us-atlas)");
    })
    .catch(function () {
      fail("The state outlines could not be loaded; facility markers are still shown.");
    });

  facilities
    .then(function (data) {
      var list = data.facilities.slice().sort(function (a, b) {
        return RANK[a.health] - RANK[b.health] || b.offline - a.offline || b.trouble - a.trouble;
      });
      var placed = [];
      var counts = { offline: 0, trouble: 0, unknown: 0, ok: 0 };
      var unplaced = 0;
      list.forEach(function (f) {
        counts[f.health] += 1;
        if (typeof f.lat !== "number" || typeof f.lon !== "number") {
          unplaced += 1;
          return;
        }
        var icon = L.divIcon({
          className: "wf-icon",
          html:
            '<span class="wf-marker health-' + f.health + '" aria-hidden="true">' +
            SYMBOL[f.health] + "</span>",
          iconSize: f.health === "offline" ? [26, 26] : [22, 22],
        });
        var marker = L.marker([f.lat, f.lon], {
          icon: icon,
          title: f.name + " (" + f.code + "): " + f.health_label,
          alt: f.name + ": " + f.health_label,
          keyboard: true,
          riseOnHover: true,
          zIndexOffset: (3 - RANK[f.health]) * 1000,
        });
        marker.bindPopup(popup(f), { autoPanPadding: [40, 40], maxWidth: 320 });
        marker.addTo(map);
        placed.push([f.lat, f.lon]);
      });
      el.dataset.markers = String(placed.length);

      Object.keys(counts).forEach(function (h) {
        var node = document.querySelector('.legend-count[data-health="' + h + '"]');
        if (node) node.textContent = String(counts[h]);
      });

      var needing = list.filter(function (f) {
        return f.health === "offline" || f.health === "trouble";
      });
      var msg = placed.length + " of " + data.total + " facilities on the map";
      msg += needing.length ? "; " + needing.length + " need attention (listed beside the map)." : "; none need attention.";
      if (unplaced) msg += " " + unplaced + " have no position recorded.";
      summary.textContent = msg;

      attention.textContent = "";
      if (!needing.length) {
        attention.appendChild(text("li", "Nothing: every facility reports its devices online or has no reports.", "muted"));
      }
      needing.forEach(function (f) {
        var item = document.createElement("li");
        var link = text("a", f.name);
        link.href = f.url;
        item.appendChild(link);
        var what = [];
        if (f.offline) what.push(f.offline + " offline");
        if (f.trouble) what.push(f.trouble + " in trouble");
        item.appendChild(text("span", " \u2014 " + SYMBOL[f.health] + " " + what.join(", ")));
        attention.appendChild(item);
      });

      // the whole contiguous US stays in view (an operator sees the country at a glance);
      // facilities outside it (Alaska, Hawaii, territories) widen the view only if they are all
      // there are
      var inConus = placed.filter(function (p) {
        return CONUS.pad(0.1).contains(p);
      });
      if (inConus.length || !placed.length) {
        var view = L.latLngBounds(CONUS.getSouthWest(), CONUS.getNorthEast());
        inConus.forEach(function (p) { view.extend(p); });
        map.fitBounds(view, { padding: [20, 20] });
      } else {
        map.fitBounds(L.latLngBounds(placed), { padding: [30, 30], maxZoom: 7 });
      }
      var outside = placed.length - inConus.length;
      if (outside && inConus.length) {
        summary.textContent += " " + outside + " outside the contiguous states: zoom out to see them.";
      }
    })
    .catch(function (err) {
      if (String(err.message) !== "logged out") {
        fail("The facility list could not be loaded (" + err.message + "). Reload the page to try again.");
      }
    });
})();
