// The recurrence picker shows only the fields its kind uses; a window's picker shows only when
// "Recurring" is ticked. Without JavaScript every field stays visible and still works.
(function () {
  "use strict";

  var FIELDS = {
    daily: ["interval"],
    weekly: ["interval", "weekdays"],
    monthly_day: ["interval", "month_day"],
    monthly_nth: ["interval", "nth", "weekday"],
    quarterly: ["month_day"],
    half_yearly: ["month_day"],
    yearly: ["interval", "month", "month_day"],
    custom: ["custom_rrule"]
  };

  function update(picker) {
    var form = picker.closest("form");
    var kind = picker.querySelector("select[name=kind]");
    var shown = FIELDS[kind && kind.value] || [];
    picker.querySelectorAll("[data-picker-field]").forEach(function (wrapper) {
      var name = wrapper.getAttribute("data-picker-field");
      wrapper.hidden = name !== "kind" && shown.indexOf(name) === -1;
    });
    var repeats = form && form.querySelector("input[name=repeats]");
    if (repeats) picker.hidden = !repeats.checked;
  }

  function init() {
    document.querySelectorAll("fieldset.picker").forEach(function (picker) {
      var form = picker.closest("form");
      update(picker);
      (form || picker).addEventListener("change", function () { update(picker); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
