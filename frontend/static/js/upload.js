// Checks a file before it is sent: extension and size (the server checks both again).
(function () {
  "use strict";
  function human(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : Math.ceil(n / 1024) + " KB"; }

  document.querySelectorAll("form[data-check-upload]").forEach(function (form) {
    var max = parseInt(form.dataset.maxBytes || "0", 10);
    var status = form.querySelector("[data-upload-status]");
    function check() {
      var problems = [];
      form.querySelectorAll('input[type="file"]').forEach(function (input) {
        var exts = (input.getAttribute("accept") || "").split(",").filter(function (e) { return e.charAt(0) === "."; });
        Array.prototype.forEach.call(input.files || [], function (file) {
          var name = file.name.toLowerCase();
          if (exts.length && !exts.some(function (e) { return name.slice(-e.length) === e; })) {
            problems.push(file.name + ": expected " + exts.join(", "));
          }
          if (max && file.size > max) { problems.push(file.name + " is " + human(file.size) + ", over the " + human(max) + " limit"); }
          if (file.size === 0) { problems.push(file.name + " is empty"); }
        });
      });
      if (status) {
        status.textContent = problems.join(". ");
        status.hidden = problems.length === 0;
      }
      return problems.length === 0;
    }
    form.addEventListener("change", check);
    form.addEventListener("submit", function (event) {
      if (!check()) { event.preventDefault(); if (status) { status.focus(); } return; }
      var button = form.querySelector('button[type="submit"]');
      if (button) { button.disabled = true; button.textContent = button.dataset.busy || "Uploading…"; }
    });
  });
})();
