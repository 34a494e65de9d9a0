// Drawing the parts of a long view when they are wanted: those in sight at once, the others when scrolled near or,
// before that, one at a time in the browser's idle time. The compare view of 500 runs has 20 charts of 25-40 ms
// each, of which about 6 are in sight: drawing all of them before showing any kept the view blank for a second.

// Parts are drawn this far before they scroll into sight, so that a scroll finds them drawn.
const NEAR = "600px 0px";

// One part a task, so that the page answers the user between parts (a part takes a few tens of ms, within the 50 ms
// an idle period gives). Idle callbacks with a `timeout`, so that a page kept busy still gets its parts drawn;
// without requestIdleCallback (Safari), a task of its own each.
const idle = window.requestIdleCallback ? (fn) => requestIdleCallback(fn, { timeout: 500 }) : (fn) => setTimeout(fn, 0);
const cancelIdle = window.cancelIdleCallback ? (handle) => cancelIdleCallback(handle) : (handle) => clearTimeout(handle);

// Whether any of the element is inside the window now (one not laid out, hidden, has no box: not in sight).
export function inSight(element) {
  const rect = element.getBoundingClientRect();
  return (rect.width > 0 || rect.height > 0)
    && rect.bottom >= 0 && rect.top <= innerHeight && rect.right >= 0 && rect.left <= innerWidth;
}

// Calls `draw(element)` once for each of `elements`: now for those in sight; for the others, once `idleAfter` (a
// promise: the view shown) has resolved, first those that come near, else in idle time; then `done()`. Returns
// `inSight` (how many were drawn at once) and `stop()`, which leaves the rest undrawn (the view left or redrawn).
export function drawLazily(elements, draw, { done = () => {}, idleAfter = Promise.resolve() } = {}) {
  const pending = new Set(elements);  // in the elements' order: the view's, from top to bottom
  const near = new Set();  // pending and near the window: drawn before the others
  let idleHandle = null;
  let soonHandle = null;
  let stopped = false;
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) if (entry.isIntersecting && pending.has(entry.target)) near.add(entry.target);
    if (near.size && soonHandle === null) soonHandle = setTimeout(drawNear, 0);
  }, { rootMargin: NEAR });

  function stop() {
    stopped = true;
    observer.disconnect();
    if (idleHandle !== null) cancelIdle(idleHandle);
    if (soonHandle !== null) clearTimeout(soonHandle);
    idleHandle = soonHandle = null;
  }

  function drawOne(element) {
    if (stopped || !pending.delete(element)) return;
    near.delete(element);
    observer.unobserve(element);
    draw(element);
    if (!pending.size) {
      stop();
      done();
    }
  }

  function drawNear() {
    soonHandle = null;
    const [first] = near;
    if (first) drawOne(first);
    if (!stopped && near.size) soonHandle = setTimeout(drawNear, 0);
  }

  function drawIdle() {
    idleHandle = null;
    const [first] = near.size ? near : pending;
    if (first) drawOne(first);
    if (!stopped && pending.size) idleHandle = idle(drawIdle);
  }

  // Measured before any is drawn (drawing does not move them: their boxes have their size already).
  const now = elements.filter(inSight);
  for (const element of now) drawOne(element);
  if (!elements.length) done();
  // Watched from then on only: observed at once, those near the window would be drawn before the view is shown
  // (the observer's first report comes with the next frame), and the view would wait for them.
  idleAfter.then(() => {
    if (stopped || !pending.size) return;
    for (const element of pending) observer.observe(element);
    idleHandle = idle(drawIdle);
  });
  return { inSight: now.length, stop };
}
