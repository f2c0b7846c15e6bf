// Tidings web admin: the few lines of glue between the server-rendered pages and the libraries.
"use strict";

// htmx 2 swaps 2xx only by default; a form answered with 422 carries its errors next to the
// fields, so it is swapped too. Other 4xx/5xx are not swapped (htmx:responseError shows them).
htmx.config.responseHandling = [
  { code: "204", swap: false },
  { code: "[23]..", swap: true },
  { code: "422", swap: true },
  { code: "[45]..", swap: false, error: true },
];

document.addEventListener("htmx:responseError", (event) => {
  const status = event.detail.xhr.status;
  const text = status === 403 ? "Refused: reload the page and try again." : `The server answered ${status}.`;
  const box = document.getElementById("flash") || document.body.appendChild(Object.assign(document.createElement("div"), { id: "flash" }));
  box.setAttribute("role", "alert");
  box.className = "error card";
  box.textContent = text;
});

// Charts: <canvas data-chart='{Chart.js config}'> (macros.chart), drawn on load and after swaps.
function drawCharts(root) {
  if (typeof Chart === "undefined") return;
  root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    if (Chart.getChart(canvas)) return;
    const config = JSON.parse(canvas.dataset.chart);
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    new Chart(canvas, config);
  });
}
document.addEventListener("DOMContentLoaded", () => drawCharts(document));
document.addEventListener("htmx:afterSettle", (event) => drawCharts(event.detail.elt));
