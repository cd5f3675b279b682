// Core of the page agent: refs, the documents and shadow roots it reaches, and target resolution.
// Runs in the page's main world; `A` is the agent's namespace (see agent.py).

// Refs: a two-letter tag drawn once per document, then a counter. The same element always gets
// the same ref; a ref from an earlier document (another tag) or whose element is gone never
// resolves to anything else.
A.refs = {
  tag: String.fromCharCode(97 + Math.floor(Math.random() * 26), 97 + Math.floor(Math.random() * 26)),
  next: 1,
  byRef: new Map(),
  byElement: new WeakMap(),
};
A.REF_PATTERN = /^[a-z]{2}[0-9]+$/;

A.refFor = (element) => {
  let ref = A.refs.byElement.get(element);
  if (!ref) {
    ref = A.refs.tag + A.refs.next++;
    A.refs.byElement.set(element, ref);
    A.refs.byRef.set(ref, new WeakRef(element));
  }
  return ref;
};

// Forget refs whose elements were collected (called by whoever mints many refs, e.g. a snapshot).
A.pruneRefs = () => {
  for (const [ref, weak] of A.refs.byRef) {
    if (!weak.deref()) A.refs.byRef.delete(ref);
  }
};

// "[ref=ab3]", "ref=ab3" and "ab3" all name the ref ab3.
A.refOf = (target) => {
  const text = String(target).trim().replace(/^\[?\s*ref\s*=\s*/, "").replace(/\s*\]$/, "");
  return A.REF_PATTERN.test(text) ? text : null;
};

// Every document the agent reaches: this one and same-origin iframes, depth first.
A.documents = (doc = document, out = []) => {
  out.push(doc);
  for (const frame of doc.querySelectorAll("iframe, frame")) {
    let inner = null;
    try {
      inner = frame.contentDocument;
    } catch (e) {
      inner = null;
    }
    if (inner) A.documents(inner, out);
  }
  return out;
};

// Every root to search: each reachable document and every open shadow root inside them.
A.roots = () => {
  const out = [];
  const visit = (root) => {
    out.push(root);
    for (const element of root.querySelectorAll("*")) {
      if (element.shadowRoot) visit(element.shadowRoot);
    }
  };
  for (const doc of A.documents()) visit(doc);
  return out;
};

// CSS selector matches across documents and open shadow roots, in document order per root.
// Throws a SyntaxError for a malformed selector (checked by resolve).
A.queryAll = (selector) => {
  const found = [];
  for (const root of A.roots()) {
    for (const element of root.querySelectorAll(selector)) found.push(element);
  }
  return found;
};

A.clip = (text, max) => {
  const squeezed = String(text || "").replace(/\s+/g, " ").trim();
  return squeezed.length > max ? squeezed.slice(0, max - 1) + "…" : squeezed;
};

// A short description of an element for messages: `role "name"`. snapshot.js defines roleOf and
// nameOf (the accessible role and name); until then, the tag and its text.
A.describe = (element) => {
  const role = A.roleOf ? A.roleOf(element) : element.localName;
  const name = A.clip(A.nameOf ? A.nameOf(element) : element.textContent, 60);
  const label = role || element.localName;
  return name ? `${label} "${name}"` : label;
};

A.error = (code, message) => ({ error: code, message });

// The element a target names: { element } or { error, message }. `target` is a ref or a CSS
// selector; a selector must match exactly one element.
A.resolve = (target) => {
  const ref = A.refOf(target);
  if (ref) {
    if (!ref.startsWith(A.refs.tag)) {
      return A.error(
        "stale_ref",
        `Ref ${ref} belongs to an earlier page (the page has changed since that snapshot); ` +
          "take a new snapshot and use its refs."
      );
    }
    const weak = A.refs.byRef.get(ref);
    const element = weak && weak.deref();
    if (!element || !element.isConnected) {
      return A.error(
        "stale_ref",
        `Ref ${ref} no longer exists on the page (its element was removed or replaced); ` +
          "take a new snapshot and use its refs."
      );
    }
    return { element };
  }
  const selector = String(target).trim();
  let matches;
  try {
    matches = A.queryAll(selector);
  } catch (e) {
    return A.error(
      "bad_selector",
      `${JSON.stringify(A.clip(selector, 100))} is neither a ref (like "ab12") nor a valid CSS selector; ` +
        "pass a ref from snapshot or find, or fix the selector."
    );
  }
  if (matches.length === 0) {
    return A.error(
      "no_match",
      `Nothing on the page matches the selector ${JSON.stringify(A.clip(selector, 100))}; ` +
        "check it with find or snapshot."
    );
  }
  if (matches.length > 1) {
    const shown = matches
      .slice(0, 3)
      .map((element) => `${A.describe(element)} [ref=${A.refFor(element)}]`)
      .join(", ");
    return A.error(
      "ambiguous",
      `The selector ${JSON.stringify(A.clip(selector, 100))} matches ${matches.length} elements ` +
        `(${shown}${matches.length > 3 ? ", …" : ""}); pass one of their refs or a more specific selector.`
    );
  }
  return { element: matches[0] };
};

// For Python: where a target points, as { ref, description } (or the error).
A.locate = (target) => {
  const found = A.resolve(target);
  if (found.error) return found;
  return { ref: A.refFor(found.element), description: A.describe(found.element) };
};

A.pageInfo = () => ({ url: location.href, title: document.title });
