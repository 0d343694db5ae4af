// Small behaviours of the portal. No inline scripts anywhere (the CSP forbids them).
(function () {
  "use strict";

  // Copy a command to the clipboard: <button data-copy="id-of-code-element">.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent;
    var done = function (label) {
      button.textContent = label;
      window.setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done("Copied"); },
        function () { done("Copy failed"); });
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done("Copied"); } catch (e) { done("Copy failed"); }
      document.body.removeChild(area);
    }
  });

  // A row swapped in by another operator's change flashes once, so it is noticed.
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.classList && target.classList.contains("run-item")) {
      target.classList.add("changed");
    }
  });
})();

// Health tiles: after each refresh, a tile whose state changed is highlighted and announced.
(function () {
  "use strict";
  var before = null;
  function states() {
    var map = {};
    document.querySelectorAll("#health-tiles .tile").forEach(function (tile) {
      map[tile.id] = tile.getAttribute("data-state");
    });
    return map;
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "health-tiles") before = states();
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!before) return;
    var changes = [];
    document.querySelectorAll("#health-tiles .tile").forEach(function (tile) {
      var was = before[tile.id];
      var now = tile.getAttribute("data-state");
      if (was && was !== now) {
        tile.classList.add("changed");
        changes.push(tile.getAttribute("data-name") + " is now " + now);
      }
    });
    before = null;
    var announcer = document.getElementById("health-announcer");
    if (announcer && changes.length) announcer.textContent = changes.join(". ") + ".";
  });
})();
