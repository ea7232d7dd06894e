// Browse page: the sort order applies on change (no Apply button), and on a narrow screen the
// filters start folded into their drawer so the first results are on screen.
(function () {
  "use strict";
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  var narrow = window.matchMedia("(max-width: 860px)");
  document.querySelectorAll("details[data-drawer]").forEach(function (drawer) {
    if (narrow.matches) { drawer.open = false; }
  });
})();
