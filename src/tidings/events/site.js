/* Tidings site tracking. Include on every page of your site:
 *   <script async src="https://TIDINGS_HOST/t/site.js"></script>
 * A visitor who arrives from a tracked email link carries ?tdc=<signed contact token>; it is
 * kept in a first-party cookie on your site, removed from the address bar, and each page view
 * of that visitor is posted to TIDINGS_HOST/t/v. Anonymous visitors are never reported. */
(function () {
  "use strict";
  var NAME = "tidings_c", PARAM = "tdc";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var base = script.src.replace(/\/t\/site\.js(\?.*)?$/, "");
  var page = new URL(window.location.href);
  var token = page.searchParams.get(PARAM);
  if (token) {
    document.cookie = NAME + "=" + encodeURIComponent(token) + "; Max-Age=31536000; Path=/; SameSite=Lax" +
      (page.protocol === "https:" ? "; Secure" : "");
    page.searchParams.delete(PARAM);
    if (window.history && window.history.replaceState) {
      window.history.replaceState(window.history.state, "", page.toString());
    }
  } else {
    var match = document.cookie.match(/(?:^|;\s*)tidings_c=([^;]*)/);
    token = match ? decodeURIComponent(match[1]) : null;
  }
  if (!token) return;
  var body = JSON.stringify({ c: token, u: page.toString(), r: document.referrer || null });
  if (navigator.sendBeacon) {
    navigator.sendBeacon(base + "/t/v", new Blob([body], { type: "text/plain" }));
  } else {
    fetch(base + "/t/v", { method: "POST", body: body, mode: "no-cors", keepalive: true });
  }
})();
