//! The stylesheet and script, compiled in and served by the dashboard itself (no CDN, nothing fetched elsewhere).

/// `/assets/app.css`.
pub(crate) const CSS: &str = r"body{font-family:system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{display:flex;gap:1.5em;align-items:center;background:#1d2430;color:#fff;padding:.6em 1.2em}
header a{color:#c9d3e3;text-decoration:none;margin-right:1em}header a.active{color:#fff;font-weight:600}
.brand{font-weight:700}.updated{margin-left:auto;font-size:.85em;color:#9fb0c8}
h1{font-size:1.3em;margin:1em 1.2em .5em}main,#actions{margin:0 1.2em 1em}
table{border-collapse:collapse;background:#fff;width:100%;font-size:.92em}
th,td{border-bottom:1px solid #e3e6eb;padding:.45em .6em;text-align:left;vertical-align:top}
th{background:#eef1f5}td{word-break:break-word}
.chip{display:inline-block;border-radius:1em;padding:.1em .7em;font-size:.88em;font-weight:600}
.chip.synced{background:#dff3e4;color:#1d6b34}.chip.partial{background:#fff1d6;color:#8a5a00}
.chip.pending{background:#dde9fb;color:#1f4f99}.chip.integrity{background:#fbdcdc;color:#a11d1d}
.chip.purging{background:#ece5f8;color:#54308f}.chip.purged{background:#e8e8e8;color:#444}
.state{font-weight:600}.state.online{color:#1d6b34}.state.backfilling{color:#1f4f99}
.state.offline{color:#777}.state.revoked{color:#a11d1d}
.sev.critical{color:#a11d1d;font-weight:700}.sev.high{color:#8a5a00;font-weight:600}
tr.acked{opacity:.6}.error{color:#a11d1d}.ok{color:#1d6b34}.note,.hint{color:#5a6577;font-size:.9em}
.action{background:#fff;padding:.8em;margin-bottom:.8em;border:1px solid #e3e6eb}
button{padding:.35em .9em}button:disabled{opacity:.55}.result{margin-left:.6em}
#confirm{position:fixed;left:50%;top:20%;transform:translateX(-50%);max-width:36em;background:#fff;
border:2px solid #1d2430;padding:1em 1.2em;box-shadow:0 4px 24px rgba(0,0,0,.25)}
";

/// `/assets/app.js`: refreshes the live region by polling, posts the actions, shows the retry cooldown. An action
/// whose button has `data-confirm` first opens a confirmation box (outside the live region, which polling replaces)
/// whose Confirm button carries the action.
pub(crate) const JS: &str = r#""use strict";
(function () {
  var live = document.getElementById("live");
  var stamp = document.getElementById("updated");
  var last = live ? live.innerHTML : "";
  function poll() {
    var url = location.pathname + "?fragment=1";
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (j && typeof j.html === "string" && j.html !== last) { live.innerHTML = j.html; last = j.html; }
        if (stamp) { stamp.textContent = new Date().toLocaleTimeString(); }
      })
      .catch(function () { if (stamp) { stamp.textContent = "relay unreachable"; } })
      .then(function () { setTimeout(poll, 2000); });
  }
  function cooldown(button, seconds) {
    var left = seconds;
    var label = button.getAttribute("data-label") || button.textContent;
    button.disabled = true;
    button.setAttribute("data-cooling", "1");
    function tick() {
      if (left <= 0) {
        button.disabled = false; button.removeAttribute("data-cooling"); button.textContent = label; return;
      }
      button.textContent = label + " (" + left + " s)";
      left -= 1;
      setTimeout(tick, 1000);
    }
    tick();
  }
  var box = null;
  function confirmFirst(b) {
    if (!box) {
      box = document.createElement("div");
      box.id = "confirm";
      box.setAttribute("role", "alertdialog");
      var text = document.createElement("p"); text.id = "confirm-text"; box.appendChild(text);
      var yes = document.createElement("button"); yes.id = "confirm-yes"; box.appendChild(yes);
      box.appendChild(document.createTextNode(" "));
      var no = document.createElement("button"); no.id = "confirm-no"; box.appendChild(no);
      var res = document.createElement("span"); res.id = "confirm-result"; res.className = "result"; box.appendChild(res);
      no.addEventListener("click", function () { box.hidden = true; });
      document.body.appendChild(box);
    }
    var y = document.getElementById("confirm-yes");
    document.getElementById("confirm-text").textContent = b.getAttribute("data-confirm");
    y.textContent = "Confirm: " + (b.getAttribute("data-label") || b.textContent);
    y.setAttribute("data-label", y.textContent);
    y.setAttribute("data-post", b.getAttribute("data-post"));
    y.setAttribute("data-result", "confirm-result");
    y.setAttribute("data-done", "1");
    y.hidden = false; y.disabled = false;
    document.getElementById("confirm-no").textContent = "Cancel";
    var r = document.getElementById("confirm-result"); r.textContent = ""; r.className = "result";
    box.hidden = false;
    y.focus();
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-post]");
    if (!b || b.disabled) { return; }
    ev.preventDefault();
    if (b.hasAttribute("data-confirm")) { confirmFirst(b); return; }
    var body = {};
    var field = b.getAttribute("data-field");
    if (field) { body.agents = document.getElementById(field).value; }
    var out = document.getElementById(b.getAttribute("data-result"));
    b.disabled = true;
    fetch(b.getAttribute("data-post"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Tessera-Dashboard": "1" },
      body: JSON.stringify(body)
    })
      .then(function (r) { return r.json().catch(function () { return { ok: false, message: "HTTP " + r.status }; }); })
      .then(function (j) {
        if (out) { out.textContent = j.message || (j.ok ? "done" : "failed"); out.className = "result " + (j.ok ? "ok" : "error"); }
        if (j.cooldown_s) { cooldown(b, j.cooldown_s); } else { b.disabled = false; }
        if (j.ok && b.hasAttribute("data-done")) { b.hidden = true; document.getElementById("confirm-no").textContent = "Close"; }
      })
      .catch(function () { b.disabled = false; if (out) { out.textContent = "the dashboard did not answer"; } });
  });
  var cooling = document.querySelectorAll("button[data-cooldown]");
  for (var i = 0; i < cooling.length; i++) {
    var s = parseInt(cooling[i].getAttribute("data-cooldown"), 10);
    if (s > 0) { cooldown(cooling[i], s); }
  }
  if (live) { setTimeout(poll, 2000); }
})();
"#;
