// Pages that refresh themselves in place (the Overview, a deployment page):
// htmx polls their live block, and on a deployment page the answer carries
// the other sections out of band. Two things a refresh must not do to
// someone using the page:
// - replace what they are editing (a filter whose list is open, a traffic
//   split being typed, a revision picked but not yet submitted): a section
//   with a focused field, or one whose fields were changed, is skipped
//   until its form is sent or the page is loaded again;
// - close an operation they opened, or open one they closed.
// A file, not inline code: the CSP allows no inline scripts.
(function () {
  const FIELDS = "input, select, textarea";

  function editing(section) {
    const focused = document.activeElement;
    return section.dataset.edited === "true" || (focused && focused.matches(FIELDS) && section.contains(focused));
  }

  function markEdited(event) {
    const section = event.target.closest && event.target.closest(".live-section");
    if (section && event.target.matches(FIELDS)) section.dataset.edited = "true";
  }
  document.addEventListener("input", markEdited);
  document.addEventListener("change", markEdited);

  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    if (editing(event.detail.target)) event.detail.shouldSwap = false;
  });

  // Which operations are open, kept across the live block's swap.
  let open = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    if (target.id !== "live") return;
    // A poll (the block asked for itself) waits while a field in it has focus;
    // what the user asked for (a filter, a History tab) always swaps.
    const polled = event.detail.requestConfig && event.detail.requestConfig.elt === target;
    if (polled && editing(target)) {
      event.detail.shouldSwap = false;
      return;
    }
    open = new Map([...target.querySelectorAll("details[id]")].map((d) => [d.id, d.open]));
  });
  document.addEventListener("htmx:afterSwap", () => {
    if (!open) return;
    document.querySelectorAll("#live details[id]").forEach((details) => {
      if (open.has(details.id)) details.open = open.get(details.id);
    });
    open = null;
  });
})();
