// wait_for: conditions checked in the page, so a wait costs one round trip instead of a poll from
// the server. A waiter lives in one document; when the page navigates it dies with it and the
// server installs the agent again in the new document and waits on (see waiting.py).

// Text a person can read: innerText of every reachable document's body (it skips hidden elements,
// scripts and styles) plus the rendered children of open shadow roots, which a host's innerText
// leaves out. Squeezed and lower-cased, so matching ignores case and line breaks.
A.waitText = () => {
  const parts = [];
  for (const root of A.roots()) {
    if (root.nodeType === Node.DOCUMENT_NODE) {
      if (root.body) parts.push(root.body.innerText);
      continue;
    }
    for (const child of root.children) {
      // innerText of an element that is not rendered is its textContent (CSS, hidden text).
      if (child.checkVisibility && child.checkVisibility({ visibilityProperty: true })) {
        parts.push(child.innerText);
      }
    }
  }
  return parts.join("\n");
};

A.waitFold = (text) => String(text).replace(/\s+/g, " ").trim().toLowerCase();

// Shown: rendered, not visibility:hidden, and with an area (a zero-size element shows nothing).
A.waitShown = (element) => {
  if (element.checkVisibility && !element.checkVisibility({ visibilityProperty: true })) return false;
  const box = element.getBoundingClientRect();
  return box.width > 0 && box.height > 0;
};

// Where the page is against each condition of `spec` ({text, text_gone, selector, url_contains}).
// `met` is true when all of them hold; the rest says what was seen, for the timeout message.
A.waitState = (spec) => {
  const state = { met: true, url: location.href, title: document.title };
  if (spec.text != null || spec.text_gone != null) {
    const raw = A.waitText();
    const text = A.waitFold(raw);
    state.excerpt = A.clip(raw, 160);
    if (spec.text != null) {
      state.text = text.includes(A.waitFold(spec.text));
      state.met = state.met && state.text;
    }
    if (spec.text_gone != null) {
      state.text_gone = !text.includes(A.waitFold(spec.text_gone));
      state.met = state.met && state.text_gone;
    }
  }
  if (spec.selector != null) {
    const matches = A.queryAll(spec.selector);
    const shown = matches.filter(A.waitShown);
    state.selector = { matches: matches.length, shown: shown.length };
    if (shown.length) state.selector.first = `${A.describe(shown[0])} [ref=${A.refFor(shown[0])}]`;
    state.met = state.met && shown.length > 0;
  }
  if (spec.url_contains != null) {
    state.url_contains = location.href.includes(spec.url_contains);
    state.met = state.met && state.url_contains;
  }
  return state;
};

// Resolves with waitState once every condition holds, or with the last state after `ms`.
// Checked at once, after DOM changes (at most every 50 ms) and every 100 ms anyway: a
// MutationObserver does not see shadow roots, iframes, CSS-only changes or pushState.
A.waitFor = (spec, ms) => {
  if (spec.selector != null) {
    try {
      A.queryAll(spec.selector);
    } catch (e) {
      return A.error(
        "bad_selector",
        `${JSON.stringify(A.clip(spec.selector, 100))} is not a valid CSS selector; fix it and wait again.`
      );
    }
  }
  const first = A.waitState(spec);
  if (first.met || ms <= 0) return first;
  return new Promise((resolve) => {
    let scheduled = null;
    const finish = (state) => {
      clearTimeout(deadline);
      clearTimeout(scheduled);
      clearInterval(poll);
      observer.disconnect();
      resolve(state);
    };
    const check = () => {
      scheduled = null;
      const state = A.waitState(spec);
      if (state.met) finish(state);
    };
    const observer = new MutationObserver(() => {
      if (scheduled === null) scheduled = setTimeout(check, 50);
    });
    observer.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
    const poll = setInterval(check, 100);
    const deadline = setTimeout(() => finish(A.waitState(spec)), ms);
  });
};
