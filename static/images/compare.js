// The compare page's before/after slider: the variant lies over the original and is cut at
// the slider's position. Without this script the page shows the two side by side.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var figure = document.querySelector("[data-before-after]");
    if (!figure) return;
    var split = figure.querySelector("[data-before-after-split]");
    var show = function () { figure.style.setProperty("--split", split.value + "%"); };
    split.addEventListener("input", show);
    show();
    figure.hidden = false;
  });
})();
