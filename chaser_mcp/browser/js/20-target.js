// Actionability, the way Playwright checks it before a click: the target is attached, visible,
// enabled, stable and is what a finger at its tap point would touch. Checks are retried for a
// bounded time (an SPA still rendering, a button still fading in), then fail with one sentence.
// Points are returned in top-level viewport CSS pixels, what Input.dispatchTouchEvent takes.

A.sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One animation frame, or 100 ms in a document that renders no frames (a hidden tab).
A.nextFrame = () =>
  new Promise((resolve) => {
    const fallback = setTimeout(resolve, 100);
    requestAnimationFrame(() => {
      clearTimeout(fallback);
      resolve();
    });
  });

// The parent across shadow roots (to the host) and frames (to the <iframe> element).
A.composedParent = (node) => {
  if (node.parentElement) return node.parentElement;
  const parent = node.parentNode;
  if (!parent) return null;
  if (parent.host) return parent.host;
  if (parent.nodeType === Node.DOCUMENT_NODE) {
    try {
      return parent.defaultView ? parent.defaultView.frameElement : null;
    } catch (e) {
      return null;
    }
  }
  return null;
};

A.isInside = (node, ancestor) => {
  for (let at = node; at; at = A.composedParent(at)) if (at === ancestor) return true;
  return false;
};

// Where an element's document sits in the top-level viewport: the sum of its frames' content
// boxes (border and padding included), and the frames' visible rectangle to clip points with.
A.frameBox = (element) => {
  let x = 0;
  let y = 0;
  let clip = { left: -Infinity, top: -Infinity, right: Infinity, bottom: Infinity };
  const frames = [];
  let view = element.ownerDocument.defaultView;
  while (view && view.frameElement) {
    frames.push(view.frameElement);
    view = view.frameElement.ownerDocument.defaultView;
  }
  for (const frame of frames.reverse()) {
    const rect = frame.getBoundingClientRect();
    const style = frame.ownerDocument.defaultView.getComputedStyle(frame);
    const pad = (side) => parseFloat(style["padding" + side] || "0");
    const left = x + rect.left + frame.clientLeft + pad("Left");
    const top = y + rect.top + frame.clientTop + pad("Top");
    clip = {
      left: Math.max(clip.left, left),
      top: Math.max(clip.top, top),
      right: Math.min(clip.right, left + frame.clientWidth - pad("Left") - pad("Right")),
      bottom: Math.min(clip.bottom, top + frame.clientHeight - pad("Top") - pad("Bottom")),
    };
    x = left;
    y = top;
  }
  return { x, y, clip };
};

// The element's box in top-level layout-viewport coordinates: its first non-empty client rect
// (an inline link wrapping two lines is tapped on its first line, as Playwright does), clipped
// to the viewport and to the frames it sits in. Null when nothing of it is on screen.
A.visibleBox = (element) => {
  const rects = Array.from(element.getClientRects()).filter((r) => r.width > 0 && r.height > 0);
  if (!rects.length) return null;
  const frame = A.frameBox(element);
  const r = rects[0];
  const left = Math.max(r.left + frame.x, frame.clip.left, 0);
  const top = Math.max(r.top + frame.y, frame.clip.top, 0);
  const right = Math.min(r.right + frame.x, frame.clip.right, window.innerWidth);
  const bottom = Math.min(r.bottom + frame.y, frame.clip.bottom, window.innerHeight);
  if (right - left < 1 || bottom - top < 1) return { rect: r, onScreen: null };
  return { rect: r, onScreen: { left, top, right, bottom } };
};

A.isVisible = (element) => {
  if (!element.isConnected) return false;
  const rects = Array.from(element.getClientRects()).filter((r) => r.width > 0 && r.height > 0);
  if (!rects.length) return false;
  if (element.checkVisibility && !element.checkVisibility({ visibilityProperty: true })) return false;
  return true;
};

// Disabled: the form control is (also through a disabled <fieldset>, which :disabled covers),
// or it or an ancestor says aria-disabled="true".
A.isDisabled = (element) => {
  if (element.matches && element.matches(":disabled")) return true;
  for (let at = element; at; at = A.composedParent(at)) {
    if (at.getAttribute && at.getAttribute("aria-disabled") === "true") return true;
  }
  return false;
};

A.TEXT_INPUTS = new Set(["", "text", "email", "password", "search", "tel", "url", "number"]);

// "text": takes keystrokes; "value": a typed input set by value (date, color, range…); null: not a field.
A.fieldKind = (element) => {
  const tag = element.localName;
  if (tag === "textarea") return "text";
  if (tag === "input") {
    const type = (element.getAttribute("type") || "").toLowerCase();
    if (A.TEXT_INPUTS.has(type)) return "text";
    if (["date", "time", "datetime-local", "month", "week", "color", "range"].includes(type)) return "value";
    return null;
  }
  if (element.isContentEditable) return "text";
  return null;
};

A.isReadOnly = (element) =>
  !!element.readOnly || (element.getAttribute && element.getAttribute("aria-readonly") === "true");

// The element that covers `target` at the point: the outermost ancestor of what was hit that
// does not also hold the target (the cookie banner, not the <p> inside it).
A.coverOf = (hit, target) => {
  const holders = new Set();
  for (let at = target; at; at = A.composedParent(at)) holders.add(at);
  let layer = hit;
  for (let at = hit; at && !holders.has(at); at = A.composedParent(at)) layer = at;
  return layer;
};

// What a finger at (x, y) (top-level layout viewport) touches: the deepest element, looking
// into open shadow roots and same-origin frames (the point moved into the frame's own viewport).
A.hitAt = (x, y) => {
  let root = document;
  let px = x;
  let py = y;
  let hit = null;
  for (let depth = 0; depth < 32; depth++) {
    let element = root.elementFromPoint(px, py);
    if (!element) return hit;
    while (element.shadowRoot) {
      const inner = element.shadowRoot.elementFromPoint(px, py);
      if (!inner || inner === element) break;
      element = inner;
    }
    hit = element;
    if (element.localName !== "iframe" && element.localName !== "frame") return hit;
    let inner = null;
    try {
      inner = element.contentDocument;
    } catch (e) {
      inner = null;
    }
    if (!inner) return hit;
    const rect = element.getBoundingClientRect();
    const style = element.ownerDocument.defaultView.getComputedStyle(element);
    px -= rect.left + element.clientLeft + parseFloat(style.paddingLeft || "0");
    py -= rect.top + element.clientTop + parseFloat(style.paddingTop || "0");
    root = inner;
  }
  return hit;
};

// A layout-viewport point as the input system wants it: relative to the visual viewport, which
// differs when the page is pinch-zoomed or laid out wider than the screen.
A.toScreen = (x, y) => {
  const vv = window.visualViewport;
  if (!vv) return { x, y };
  return { x: (x - vv.offsetLeft) * vv.scale, y: (y - vv.offsetTop) * vv.scale };
};

// A checkbox or radio hidden behind a styled label is tapped on its label, as a person would.
A.tapTargetOf = (element) => {
  if (element.localName === "input" && ["checkbox", "radio"].includes(element.type) && !A.isVisible(element)) {
    for (const label of element.labels || []) if (A.isVisible(label)) return label;
  }
  return element;
};

A.seconds = (ms) => `${Math.round(ms / 100) / 10} s`;

// One pass of the checks. { point } when actionable; { retry: {code, message} } when it may
// become actionable; { final: error } when waiting cannot help.
A.checkOnce = async (target, options) => {
  const checks = options.checks;
  const found = A.resolve(target);
  if (found.error) {
    if (found.error !== "no_match") return { final: found };
    return {
      retry: {
        code: "no_match",
        message: (waited) =>
          `Nothing on the page matched the selector ${JSON.stringify(A.clip(String(target), 100))} ` +
          `within ${waited}; check it with find or snapshot.`,
      },
    };
  }
  const element = found.element;
  const ref = A.refFor(element);
  const name = `${A.describe(element)} [ref=${ref}]`;
  const tapped = options.label ? A.tapTargetOf(element) : element;
  if (checks.includes("visible") && !A.isVisible(tapped)) {
    return {
      retry: {
        code: "not_visible",
        message: (waited) =>
          `${name} stayed hidden (not visible) for ${waited}; open or scroll to what holds it, ` +
          "or take a new snapshot.",
      },
    };
  }
  if (checks.includes("enabled") && A.isDisabled(element)) {
    return {
      retry: {
        code: "disabled",
        message: (waited) =>
          `${name} stayed disabled for ${waited}; do what enables it first (e.g. fill required fields) ` +
          "or pick another element.",
      },
    };
  }
  if (checks.includes("editable")) {
    if (!A.fieldKind(element)) {
      return {
        final: A.error(
          "not_editable",
          `${name} is not a text field; ${options.verb || "fill"} needs an input, a textarea or an ` +
            "editable element."
        ),
      };
    }
    if (A.isReadOnly(element)) {
      return {
        retry: {
          code: "read_only",
          message: (waited) => `${name} stayed read-only for ${waited}; pick a field that can be edited.`,
        },
      };
    }
  }
  if (!checks.includes("point")) return { point: { ref, description: A.describe(element) } };

  let box = A.visibleBox(tapped);
  const centre = box && box.onScreen;
  const fullyIn =
    centre &&
    box.rect.width <= centre.right - centre.left + 1 &&
    box.rect.height <= centre.bottom - centre.top + 1;
  if (!fullyIn) {
    tapped.scrollIntoView({ block: "center", inline: "center", behavior: "instant" });
    await A.nextFrame();
  }
  if (checks.includes("stable")) {
    const before = tapped.getBoundingClientRect();
    await A.nextFrame();
    await A.nextFrame();
    const after = tapped.getBoundingClientRect();
    if (
      before.x !== after.x ||
      before.y !== after.y ||
      before.width !== after.width ||
      before.height !== after.height
    ) {
      return {
        retry: {
          code: "not_stable",
          message: (waited) => `${name} kept moving for ${waited} (an animation); try again once it stops.`,
        },
      };
    }
  }
  box = A.visibleBox(tapped);
  if (!box || !box.onScreen) {
    return {
      retry: {
        code: "off_screen",
        message: (waited) =>
          `${name} could not be scrolled onto the screen within ${waited}; scroll its container ` +
          "with act scroll, then try again.",
      },
    };
  }
  const x = (box.onScreen.left + box.onScreen.right) / 2;
  const y = (box.onScreen.top + box.onScreen.bottom) / 2;
  if (checks.includes("hit")) {
    const hit = A.hitAt(x, y);
    const label = hit && hit.closest && hit.closest("label");
    const ok = hit && (A.isInside(hit, tapped) || A.isInside(hit, element) || (label && label.control === element));
    if (!ok) {
      const cover = hit ? A.describe(A.coverOf(hit, element)) : "nothing (the point is off the page)";
      return {
        retry: {
          code: "covered",
          message: (waited) =>
            `${name} is covered by ${cover} at its tap point (still after ${waited}), so nothing was ` +
            `${options.verb || "tapped"}; dismiss or close that first, then try again.`,
        },
      };
    }
  }
  const screen = A.toScreen(x, y);
  return { point: { ref, description: A.describe(element), x: screen.x, y: screen.y } };
};

// The checks retried until they pass or `timeoutMs` runs out. `checks` is a list of "visible",
// "enabled", "editable", "point" (scroll into view and compute the tap point), "stable", "hit".
// Answers { ref, description, x?, y? } or the last failure as an error.
A.actionPoint = async (target, options = {}) => {
  const opts = {
    checks: ["visible", "enabled", "point", "stable", "hit"],
    timeoutMs: 5000,
    ...options,
  };
  const started = performance.now();
  const pauses = [0, 20, 50, 100, 100, 250, 500];
  for (let attempt = 0; ; attempt++) {
    const outcome = await A.checkOnce(target, opts);
    if (outcome.point) return outcome.point;
    if (outcome.final) return outcome.final;
    const elapsed = performance.now() - started;
    if (elapsed >= opts.timeoutMs) {
      return A.error(outcome.retry.code, outcome.retry.message(A.seconds(opts.timeoutMs)));
    }
    const pause = pauses[Math.min(attempt, pauses.length - 1)];
    await A.sleep(Math.min(pause, opts.timeoutMs - elapsed));
  }
};
