// Search by data: "Use these renames" copies the suggested column matches into the form's
// "Rename columns" field and never submits: the user checks them, chooses the file again (a
// browser never keeps a file input across pages) and presses Search. Without JavaScript, or on a
// page without the field, the button stays hidden and the "New search with these renames" link
// opens the search page with the field already filled.
(function () {
  "use strict";
  var field = document.querySelector('form [name="column_map"]');
  if (!field) { return; }

  function pairs(text) {
    return text.split(/[,\n]/).map(function (p) { return p.trim(); }).filter(Boolean);
  }

  document.querySelectorAll("[data-use-renames]").forEach(function (button) {
    var box = button.closest("[data-column-suggestions]");
    var status = box.querySelector("[data-use-renames-status]");
    var link = box.querySelector("[data-renames-link]");
    if (link) { link.hidden = true; }
    button.hidden = false;
    button.addEventListener("click", function () {
      // Keep the user's own renames; add a suggestion only for a column not renamed yet.
      var kept = pairs(field.value);
      var renamed = kept.map(function (p) { return p.split("=")[0].trim(); });
      pairs(button.getAttribute("data-use-renames")).forEach(function (p) {
        if (renamed.indexOf(p.split("=")[0].trim()) < 0) { kept.push(p); }
      });
      field.value = kept.join(", ");
      if (status) {
        status.textContent = "Added to “Rename columns”. Choose your file again and press Search to use them.";
        status.hidden = false;
      }
      field.focus();
    });
  });
})();
