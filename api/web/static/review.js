// fakeguard review pages: keyboard shortcuts, claim-on-open and release-on-leave. No dependencies.
(function () {
  "use strict";

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function go(id) {
    var link = document.getElementById(id);
    if (link && link.href) { window.location.href = link.href; }
  }

  // Listing page: claim the item when the page opens, show who holds it, and give the claim up
  // when the page is left without a decision (j/k, the queue, closing the tab), so that other
  // reviewers can take the item at once instead of waiting for the lease to run out.
  var claimedHere = false;
  var deciding = false;

  function releaseOnLeave() {
    var box = document.getElementById("claim-status");
    if (!box || !claimedHere || deciding) { return; }
    claimedHere = false;
    fetch(box.dataset.releaseUrl, {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: { "X-CSRF-Token": box.dataset.csrf, "Accept": "application/json" }
    }).catch(function () { /* the lease runs out by itself */ });
  }

  function claimOnOpen() {
    var box = document.getElementById("claim-status");
    if (!box || box.dataset.autoClaim !== "yes") { return; }
    fetch(box.dataset.claimUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": box.dataset.csrf, "Accept": "application/json" }
    }).then(function (r) {
      return r.json().then(function (body) { return { status: r.status, body: body }; });
    }).then(function (res) {
      if (res.status === 200) {
        claimedHere = true;
        var until = res.body.claim_expires_at ? new Date(res.body.claim_expires_at) : null;
        box.className = "claim mine";
        box.textContent = "Claimed by you" + (until ? " until " + until.toLocaleTimeString() : "") + ".";
      } else if (res.status === 409) {
        box.className = "claim held";
        box.textContent = (res.body.detail || "Another reviewer holds this item") +
          ": you can look, but deciding is blocked.";
        document.querySelectorAll("#decide button").forEach(function (b) { b.disabled = true; });
      } else {
        box.className = "claim held";
        box.textContent = "Could not claim this item: " + (res.body.detail || res.status);
      }
    }).catch(function () {
      box.textContent = "Could not reach the server to claim this item.";
    });
  }

  // Queue page: a row cursor moved with j/k, Enter opens.
  var rows = [];
  var cursor = -1;
  function setCursor(i) {
    if (!rows.length) { return; }
    cursor = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (r, n) { r.classList.toggle("cursor", n === cursor); });
    rows[cursor].scrollIntoView({ block: "nearest" });
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) { return; }
    var form = document.getElementById("decide");
    if (form) {
      var button = form.querySelector('button[data-key="' + e.key + '"]');
      if (button) {
        e.preventDefault();
        if (!button.disabled) {
          form.querySelectorAll("button").forEach(function (b) { b.classList.remove("pressed"); });
          button.classList.add("pressed");
          form.requestSubmit(button);
        }
        return;
      }
      if (e.key === "j") { e.preventDefault(); go("next-item"); return; }
      if (e.key === "k") { e.preventDefault(); go("prev-item"); return; }
      return;
    }
    if (rows.length) {
      if (e.key === "j") { e.preventDefault(); setCursor(cursor + 1); return; }
      if (e.key === "k") { e.preventDefault(); setCursor(cursor - 1); return; }
      if (e.key === "Enter" && cursor >= 0) { e.preventDefault(); window.location.href = rows[cursor].dataset.href; return; }
    }
    if (e.key === "n") {
      var work = document.getElementById("work-next");
      if (work) { e.preventDefault(); work.form.requestSubmit(work); }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    rows = Array.prototype.slice.call(document.querySelectorAll("table.queue tbody tr[data-href]"));
    rows.forEach(function (r) {
      r.addEventListener("click", function (e) {
        if (e.target.tagName !== "A") { window.location.href = r.dataset.href; }
      });
    });
    claimOnOpen();
    var decide = document.getElementById("decide");
    if (decide) { decide.addEventListener("submit", function () { deciding = true; }); }
    window.addEventListener("pagehide", releaseOnLeave);
    document.addEventListener("keydown", onKey);
  });
})();
