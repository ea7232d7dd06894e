// Live progress of a background job: polls GET /api/v1/jobs/{id}/ (session auth) and
// reloads the page once the job reaches a terminal state, so the server renders the outcome.
(function () {
  "use strict";
  var TERMINAL = ["succeeded", "rejected", "failed", "cancelled"];
  var BADGE = { succeeded: "ok", rejected: "bad", failed: "bad", cancelled: "bad" };

  function set(root, field, text) {
    var el = root.querySelector('[data-job-field="' + field + '"]');
    if (el) { el.textContent = text; }
    return el;
  }

  function render(root, job) {
    var badge = root.querySelector('[data-job-field="status"]');
    if (badge) { badge.innerHTML = ""; var b = document.createElement("span"); b.className = "badge " + (BADGE[job.status] || "warn"); b.textContent = job.status; badge.appendChild(b); }
    set(root, "stage", job.stage || "waiting for a worker");
    set(root, "message", job.message || "");
    set(root, "progress", String(job.progress));
    var bar = root.querySelector('[data-job-field="bar"]');
    if (bar) { bar.style.width = job.progress + "%"; bar.parentNode.setAttribute("aria-valuenow", job.progress); }
    var log = root.querySelector('[data-job-field="log"]');
    if (log && Array.isArray(job.log)) {
      log.innerHTML = "";
      job.log.forEach(function (entry) {
        var li = document.createElement("li");
        var strong = document.createElement("strong");
        strong.textContent = entry.stage || "";
        li.appendChild(strong);
        li.appendChild(document.createTextNode(" " + (entry.status || "") + " " + (entry.message || "")));
        log.appendChild(li);
      });
    }
    // Stage lists elsewhere on the page (e.g. a submission's six stages).
    document.querySelectorAll("[data-stage]").forEach(function (li) {
      var stages = Array.prototype.map.call(document.querySelectorAll("[data-stage]"), function (x) { return x.dataset.stage; });
      var here = stages.indexOf(li.dataset.stage), now = stages.indexOf(job.stage);
      if (now < 0) { return; }
      li.classList.toggle("done", here < now);
      li.classList.toggle("active", here === now);
    });
  }

  function poll(root) {
    var url = root.dataset.jobUrl, delay = 700;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (job) {
          render(root, job);
          if (TERMINAL.indexOf(job.status) >= 0) { window.location.reload(); return; }
          delay = Math.min(delay * 1.2, 3000);
          window.setTimeout(tick, delay);
        })
        .catch(function () { delay = Math.min(delay * 2, 10000); window.setTimeout(tick, delay); });
    }
    tick();
  }

  document.querySelectorAll("[data-job-url]").forEach(poll);
})();
