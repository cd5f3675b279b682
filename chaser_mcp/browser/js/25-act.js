// The page side of act (browser/actions.py): preparing a field, choosing an option, reading a
// checkbox, scrolling. Checks run before the action (and may wait); the functions that change
// the page (setValue, commitField, chooseOption, scrollStep) run inside it, so whatever they
// cause (a navigation, a dialog) is seen.

// The focused element, looking into shadow roots and same-origin frames; null when it is the page.
A.activeElement = () => {
  let element = document.activeElement;
  for (;;) {
    if (!element) return null;
    if (element.shadowRoot && element.shadowRoot.activeElement) {
      element = element.shadowRoot.activeElement;
      continue;
    }
    if (element.localName === "iframe" || element.localName === "frame") {
      let inner = null;
      try {
        inner = element.contentDocument && element.contentDocument.activeElement;
      } catch (e) {
        inner = null;
      }
      if (inner) {
        element = inner;
        continue;
      }
    }
    break;
  }
  return element.localName === "body" || element.localName === "html" ? null : element;
};

A.isSecret = (element) => element.localName === "input" && element.type === "password";

// What a field holds now, for the answer (a password's length only: secrets never leave the page).
A.fieldState = (target) => {
  const found = A.resolve(target);
  if (found.error) return found;
  const element = found.element;
  const value = element.isContentEditable && !("value" in element) ? element.innerText : String(element.value ?? "");
  return {
    ref: A.refFor(element),
    description: A.describe(element),
    secret: A.isSecret(element),
    length: value.length,
    value: A.isSecret(element) ? "" : A.clip(value, 200),
  };
};

// fill and type: wait until the target is a visible, enabled, editable field, focus it, and
// select its content (fill) or put the caret at the end (type).
A.focusField = async (target, options = {}) => {
  const ready = await A.actionPoint(target, {
    checks: ["visible", "enabled", "editable"],
    timeoutMs: options.timeoutMs,
    verb: options.verb,
  });
  if (ready.error) return ready;
  const element = A.resolve(ready.ref).element;
  element.focus({ preventScroll: false });
  const kind = A.fieldKind(element);
  if (kind === "text") {
    if (element.isContentEditable && !("value" in element)) {
      const range = element.ownerDocument.createRange();
      range.selectNodeContents(element);
      if (!options.selectAll) range.collapse(false);
      const selection = element.ownerDocument.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    } else if (options.selectAll) {
      element.select();
    } else {
      try {
        element.setSelectionRange(element.value.length, element.value.length);
      } catch (e) {
        // email and number inputs have no selection API; the caret stays where focus put it
      }
    }
  }
  return { ...ready, kind, secret: A.isSecret(element) };
};

// type without a target: the focused field.
A.focusedField = () => {
  const element = A.activeElement();
  if (!element || !A.fieldKind(element)) {
    return A.error(
      "no_focus",
      "No text field has focus to type into; pass the field as target (a ref or a CSS selector)."
    );
  }
  return { ref: A.refFor(element), description: A.describe(element), secret: A.isSecret(element) };
};

// A date, colour or range input takes a value, not keystrokes: set it as the browser's own
// picker would, with input and change events.
A.setValue = (target, value) => {
  const found = A.resolve(target);
  if (found.error) return found;
  const element = found.element;
  const setter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(element), "value").set;
  setter.call(element, value);
  if (element.value !== value) {
    return A.error(
      "bad_value",
      `${A.describe(element)} did not take ${JSON.stringify(A.clip(value, 60))}; give it in the ` +
        `form a ${element.type} field expects (e.g. ${A.VALUE_EXAMPLES[element.type] || "its own format"}).`
    );
  }
  element.dispatchEvent(new Event("input", { bubbles: true, composed: true }));
  element.dispatchEvent(new Event("change", { bubbles: true }));
  return true;
};
A.VALUE_EXAMPLES = {
  date: "2024-05-31",
  time: "13:45",
  "datetime-local": "2024-05-31T13:45",
  month: "2024-05",
  week: "2024-W22",
  color: "#ff8800",
  range: "a number in its range",
};

// After fill's keystrokes: the change event a person's leaving the field would fire.
A.commitField = (target) => {
  const found = A.resolve(target);
  if (found.error) return found;
  found.element.dispatchEvent(new Event("change", { bubbles: true }));
  return true;
};

// press with a target: focus it first (a link, a button, a field).
A.focusTarget = async (target, options = {}) => {
  const ready = await A.actionPoint(target, { checks: ["visible", "enabled"], timeoutMs: options.timeoutMs });
  if (ready.error) return ready;
  A.resolve(ready.ref).element.focus();
  return ready;
};

A.focusedDescription = () => {
  const element = A.activeElement();
  return element ? `${A.describe(element)} [ref=${A.refFor(element)}]` : null;
};

A.optionLabel = (option) => A.clip(option.label || option.textContent, 80);

// select: the option of a <select> whose label or value is `wanted` (exact, then ignoring case).
A.findOption = async (target, wanted, options = {}) => {
  const ready = await A.actionPoint(target, { checks: ["visible", "enabled"], timeoutMs: options.timeoutMs });
  if (ready.error) return ready;
  let select = A.resolve(ready.ref).element;
  if (select.localName === "option" && select.closest("select")) select = select.closest("select");
  const name = `${A.describe(select)} [ref=${A.refFor(select)}]`;
  if (select.localName !== "select") {
    return A.error(
      "not_select",
      `${name} is not a <select>; tap it to open its list, then tap the option you want.`
    );
  }
  const all = Array.from(select.options);
  const text = String(wanted).trim();
  const match =
    all.find((o) => A.optionLabel(o) === text) ||
    all.find((o) => o.value === text) ||
    all.find((o) => A.optionLabel(o).toLowerCase() === text.toLowerCase()) ||
    all.find((o) => o.value.toLowerCase() === text.toLowerCase());
  if (!match) {
    const shown = all.slice(0, 15).map((o) => JSON.stringify(A.optionLabel(o))).join(", ");
    return A.error(
      "no_option",
      `${name} has no option ${JSON.stringify(A.clip(text, 60))}; its options are ${shown}` +
        `${all.length > 15 ? ", …" : ""}.`
    );
  }
  if (match.disabled) {
    return A.error("disabled", `The option ${JSON.stringify(A.optionLabel(match))} of ${name} is disabled; pick another.`);
  }
  return {
    ref: A.refFor(select),
    description: A.describe(select),
    index: match.index,
    label: A.optionLabel(match),
    value: match.value,
    already: match.selected,
  };
};

// Choose an option the way the browser's own picker does: select it, then input and change.
A.chooseOption = (target, index) => {
  const found = A.resolve(target);
  if (found.error) return found;
  const select = found.element;
  select.selectedIndex = index;
  select.dispatchEvent(new Event("input", { bubbles: true, composed: true }));
  select.dispatchEvent(new Event("change", { bubbles: true }));
  return true;
};

// check / uncheck: what kind of checkable the target is and whether it is checked now.
A.checkable = async (target, options = {}) => {
  const ready = await A.actionPoint(target, { checks: [], timeoutMs: options.timeoutMs });
  if (ready.error) return ready;
  const element = A.resolve(ready.ref).element;
  let kind = null;
  let checked = null;
  if (element.localName === "input" && ["checkbox", "radio"].includes(element.type)) {
    kind = element.type;
    checked = element.checked;
  } else {
    const role = element.getAttribute("role");
    if (["checkbox", "radio", "switch", "menuitemcheckbox", "menuitemradio"].includes(role)) {
      kind = role;
      checked = element.getAttribute("aria-checked") === "true";
    }
  }
  if (!kind) {
    return A.error(
      "not_checkable",
      `${A.describe(element)} [ref=${ready.ref}] is not a checkbox, radio button or switch; use tap for it.`
    );
  }
  return { ...ready, kind, checked };
};

// The element that scrolls for a target (itself or its nearest scrollable ancestor), or for
// the page: the document, unless the app scrolls an inner container (a full-height <main>).
A.isScrollable = (element) => {
  if (element.scrollHeight <= element.clientHeight + 1) return false;
  const overflow = getComputedStyle(element).overflowY;
  return overflow === "auto" || overflow === "scroll" || overflow === "overlay";
};
A.scrollerFor = (element) => {
  for (let at = element; at; at = A.composedParent(at)) {
    if (at === at.ownerDocument.documentElement || at === at.ownerDocument.body) break;
    if (at.nodeType === Node.ELEMENT_NODE && A.isScrollable(at)) return at;
  }
  return null;
};
A.pageScroller = () => {
  const root = document.scrollingElement || document.documentElement;
  if (root.scrollHeight > root.clientHeight + 1) return root;
  const middle = A.hitAt(window.innerWidth / 2, window.innerHeight / 2);
  return (middle && A.scrollerFor(middle)) || root;
};

// scroll: move the page (or the target's scroll container) one screen down/up or to the
// top/bottom; near the bottom, wait up to `growMs` for an infinite feed to load more.
A.scrollStep = async (target, direction, options = {}) => {
  let scroller;
  if (target) {
    const found = A.resolve(target);
    if (found.error) return found;
    scroller = A.isScrollable(found.element) ? found.element : A.scrollerFor(found.element);
    if (!scroller) {
      return A.error(
        "not_scrollable",
        `${A.describe(found.element)} is not in a scrollable area; scroll the page without a target.`
      );
    }
  } else {
    scroller = A.pageScroller();
  }
  const max = () => scroller.scrollHeight - scroller.clientHeight;
  const before = { top: scroller.scrollTop, height: scroller.scrollHeight };
  const step = Math.round(scroller.clientHeight * 0.85);
  const top = { down: before.top + step, up: before.top - step, top: 0, bottom: max() }[direction];
  scroller.scrollTo({ top, behavior: "instant" });
  await A.nextFrame();
  const nearBottom = () => max() - scroller.scrollTop < scroller.clientHeight;
  if ((direction === "down" || direction === "bottom") && nearBottom()) {
    const until = performance.now() + (options.growMs ?? 1500);
    while (scroller.scrollHeight === before.height && performance.now() < until) await A.sleep(50);
    if (scroller.scrollHeight !== before.height) await A.nextFrame();
  }
  return {
    top: Math.round(scroller.scrollTop),
    max: Math.round(max()),
    moved: Math.round(scroller.scrollTop - before.top),
    grew: Math.round(scroller.scrollHeight - before.height),
  };
};

// scroll with only a target: bring it to the middle of the screen.
A.scrollIntoView = async (target, options = {}) => {
  const ready = await A.actionPoint(target, { checks: [], timeoutMs: options.timeoutMs });
  if (ready.error) return ready;
  const element = A.resolve(ready.ref).element;
  element.scrollIntoView({ block: "center", inline: "center", behavior: "instant" });
  await A.nextFrame();
  return ready;
};
