// Small behaviours of the portal. No inline scripts anywhere (the CSP forbids them).
(function () {
  "use strict";

  // The navigation folds behind its Menu button on small screens (CSS), only with this
  // script running: without it, it stays open.
  document.documentElement.classList.add("js");
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-menu-button]");
    if (!button) return;
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    button.closest(".nav").classList.toggle("is-open", open);
  });

  // The account menu (a <details>) closes on Escape, giving focus back to its summary, and
  // on a click anywhere else.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector("[data-account-menu][open]");
    if (!open) return;
    open.removeAttribute("open");
    open.querySelector("summary").focus();
  });
  document.addEventListener("click", function (event) {
    var open = document.querySelector("[data-account-menu][open]");
    if (open && !open.contains(event.target)) open.removeAttribute("open");
  });

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

  // Incident clocks count every second between the server's refreshes:
  // <span data-clock="ISO time" data-clock-mode="since|until">.
  function shortDuration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var days = Math.floor(seconds / 86400), hours = Math.floor(seconds % 86400 / 3600);
    var minutes = Math.floor(seconds % 3600 / 60), rest = seconds % 60;
    if (days) return days + " d " + hours + " h";
    if (hours) return hours + " h " + minutes + " min";
    if (minutes) return minutes + " min " + rest + " s";
    return rest + " s";
  }
  function tickClocks() {
    var now = Date.now();
    document.querySelectorAll("[data-clock]").forEach(function (clock) {
      var at = Date.parse(clock.getAttribute("data-clock"));
      if (isNaN(at)) return;
      var seconds = clock.getAttribute("data-clock-mode") === "until" ? (at - now) / 1000 : (now - at) / 1000;
      clock.textContent = shortDuration(seconds) + (clock.getAttribute("data-clock-suffix") || "");
    });
  }
  // Clocks also arrive with polled fragments (health tiles): count them as soon as they do.
  var counting = false;
  function startClocks() {
    tickClocks();
    if (!counting && document.querySelector("[data-clock]")) {
      counting = true;
      window.setInterval(tickClocks, 1000);
    }
  }
  document.addEventListener("DOMContentLoaded", startClocks);
  document.addEventListener("htmx:afterSettle", startClocks);

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

// Time-boxed checklist items: "due in 12 min" counts down and turns into "overdue by 3 min"
// (the server renders the same text; this keeps it current between refreshes).
(function () {
  "use strict";
  function span(minutes) {
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    var rest = minutes % 60;
    return hours + " h" + (rest ? " " + rest + " min" : "");
  }
  function tick() {
    document.querySelectorAll("time.countdown[datetime]").forEach(function (element) {
      var due = Date.parse(element.getAttribute("datetime"));
      if (isNaN(due)) return;
      var minutes = Math.round((due - Date.now()) / 60000);
      var item = element.closest(".due-at");
      if (minutes >= 0) {
        element.textContent = "due in " + span(minutes);
        if (item) { item.classList.remove("is-overdue", "bad"); item.classList.add("warn"); }
      } else {
        element.textContent = "overdue by " + span(-minutes);
        if (item) { item.classList.add("is-overdue", "bad"); item.classList.remove("warn"); }
      }
    });
  }
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSettle", tick);
  setInterval(tick, 15000);
})();
