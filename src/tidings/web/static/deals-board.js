// The deals board: each column's cards are a SortableJS list sharing one group, so a card can
// be dragged to another stage or to another place in its column. A drop posts the stage and the
// card now below it (before_id) or, at the column's end, the card above it (after_id); the CSRF
// header comes from <body>'s hx-headers, and htmx swaps the board the server answers, its
// counts and values up to date.
(function () {
  function neighbour(item) {
    const next = item.nextElementSibling;
    if (next && next.dataset.deal) return { before_id: next.dataset.deal };
    const previous = item.previousElementSibling;
    if (previous && previous.dataset.deal) return { after_id: previous.dataset.deal };
    return {};
  }

  function wire(root) {
    const board = root.querySelector ? (root.id === "board" ? root : root.querySelector("#board")) : null;
    if (!board || !window.Sortable) return;
    board.querySelectorAll("ol.cards").forEach(function (list) {
      window.Sortable.create(list, {
        group: "deals",
        animation: 120,
        forceFallback: true, // mouse events, not native drag: the same on touch screens and in tests
        onEnd: function (event) {
          if (event.from === event.to && event.oldIndex === event.newIndex) return;
          const deal = event.item.dataset.deal;
          const values = Object.assign({ stage_id: event.to.dataset.stage }, neighbour(event.item));
          if (board.dataset.owner) values.owner = board.dataset.owner;
          window.htmx.ajax("POST", "/admin/deals/" + deal + "/move", {
            target: "#board", swap: "outerHTML", values: values,
          });
        },
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:afterSettle", function (e) { wire(e.detail.elt.parentNode || document); });
})();
