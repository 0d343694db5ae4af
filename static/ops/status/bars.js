// The status page's day bars: one Tab stop a component, the arrow keys (and Home/End) move
// between its days; the focused day shows its uptime and incidents (CSS, :focus).
document.addEventListener("keydown", (event) => {
  const bar = event.target;
  if (!(bar instanceof HTMLElement) || !bar.classList.contains("bar")) return;
  const bars = Array.from(bar.parentElement.children);
  const index = bars.indexOf(bar);
  const moves = { ArrowLeft: index - 1, ArrowRight: index + 1, Home: 0, End: bars.length - 1 };
  if (!(event.key in moves)) return;
  const next = bars[Math.max(0, Math.min(bars.length - 1, moves[event.key]))];
  event.preventDefault();
  bar.tabIndex = -1;
  next.tabIndex = 0;
  next.focus();
});
