// Snapshot and find: the page as a compact outline, one element a line, and the few elements
// that match a query. Both walk the FLATTENED tree a person sees: open shadow roots in place of
// their host's children (slots filled with what is assigned to them), same-origin iframes'
// documents inline. Closed shadow roots cannot be reached from a page script and are not shown.
//
// Line format (chosen for the fewest bytes a model still reads unambiguously):
//   role "accessible name" details [ref=ab12]
// e.g. `link "Install" /docs/install [ref=ab3]`, `textbox "Email" type=email required [ref=ab4]`,
// `h2 "Usage"`. Containers that give context (landmarks, forms, dialogs, named groups, same-origin
// iframes) indent what they hold by one space; lists and generic wrappers do not (they cost a
// line each and say little). With scope "all", text sits between them as bare lines: paragraphs
// as they are, list items as `- text`, table rows as `| a | b |`, code between ``` fences.

A.NAME_MAX = 80;
A.VALUE_MAX = 60;
A.URL_MAX = 150;
A.TEXT_LINE_MAX = 2000; // longer text is split so that a page of the outline can always be cut
A.OPTIONS_SHOWN = 8;

const SKIPPED_TAGS = new Set([
  "script", "style", "template", "noscript", "head", "meta", "link", "base", "title", "datalist", "param",
]);
const LANDMARKS = new Set([
  "banner", "navigation", "main", "complementary", "contentinfo", "search", "region", "form",
]);
const WIDGET_ROLES = new Set([
  "button", "link", "checkbox", "radio", "switch", "tab", "menuitem", "menuitemcheckbox",
  "menuitemradio", "option", "combobox", "textbox", "searchbox", "slider", "spinbutton", "treeitem",
]);
// Roles whose accessible name comes from their content (ARIA "name from content").
const NAME_FROM_CONTENT = new Set([
  "button", "link", "heading", "checkbox", "radio", "switch", "tab", "menuitem", "menuitemcheckbox",
  "menuitemradio", "option", "treeitem", "cell", "columnheader", "rowheader", "tooltip", "row",
  "alert", "status",
]);
const NAMED_GROUPS = new Set(["group", "radiogroup"]);
// Elements find matches by their name, besides actionable ones and landmarks.
const NAMED_FINDS = new Set(["heading", "img", "dialog", "alertdialog", "figure", "table"]);
const INPUT_ROLES = {
  checkbox: "checkbox", radio: "radio", button: "button", submit: "button", reset: "button",
  image: "button", file: "button", range: "slider", number: "spinbutton", search: "searchbox",
  color: "button",
};
// Input types whose role already says what the field takes: their `type=` is not repeated.
const SELF_EVIDENT_TYPES = new Set([
  "text", "checkbox", "radio", "submit", "button", "reset", "search", "number", "range", "image",
]);
const SECTIONING = "article, aside, main, nav, section";
const UNSHOWN_VALUES = new Set(["password", "hidden", "checkbox", "radio", "file"]);
const VALUE_ROLES = new Set(["textbox", "searchbox", "combobox", "slider", "spinbutton"]);

A.squeeze = (text) => String(text || "").replace(/\s+/g, " ").trim();

const styleOf = (element) => element.ownerDocument.defaultView.getComputedStyle(element);

// The children a person sees: a shadow host's open shadow root, a slot's assigned nodes (or its
// fallback content), otherwise the light children. Iframes are entered by the walkers themselves.
A.flatChildren = (node) => {
  if (node.nodeType === 1) {
    if (node.shadowRoot) return node.shadowRoot.childNodes;
    if (node.localName === "slot") {
      const assigned = node.assignedNodes();
      return assigned.length ? assigned : node.childNodes;
    }
  }
  return node.childNodes;
};

// The document inside an iframe when the page may read it (same origin, loaded); else null.
A.frameDocument = (frame) => {
  try {
    return frame.contentDocument || null;
  } catch (e) {
    return null;
  }
};

// "skip": neither the element nor anything inside shows; "self": the element has no box of its
// own or is visibility:hidden, but children may show; "show": rendered.
A.visibility = (element, style) => {
  if (element.getAttribute("aria-hidden") === "true" || element.inert) return "skip";
  if (style.display === "none") return "skip";
  if (style.display === "contents") return "self";
  // No box (content-visibility: hidden, a closed <details>' content, …).
  if (element.checkVisibility && !element.checkVisibility()) return "skip";
  if (style.visibility !== "visible") return "self";
  return "show";
};

// The element where a contenteditable region starts (its children are editable too, not separate).
const editingHost = (element) =>
  element.isContentEditable && !(element.parentElement && element.parentElement.isContentEditable);

const isBlock = (style) => !style.display.startsWith("inline") && style.display !== "contents";

A.roleOf = (element) => {
  const explicit = (element.getAttribute("role") || "").trim().split(/\s+/)[0].toLowerCase();
  if (explicit && explicit !== "none" && explicit !== "presentation" && explicit !== "generic") {
    return explicit;
  }
  if (explicit) return null;
  const tag = element.localName;
  switch (tag) {
    case "a":
    case "area":
      return element.hasAttribute("href") ? "link" : null;
    case "button":
      return "button";
    case "summary":
      return "button";
    case "input": {
      const type = (element.getAttribute("type") || "text").toLowerCase();
      if (type === "hidden") return null;
      if (element.hasAttribute("list") && (type === "search" || !INPUT_ROLES[type])) return "combobox";
      if (INPUT_ROLES[type]) return INPUT_ROLES[type];
      return "textbox";
    }
    case "select":
      return element.multiple || element.size > 1 ? "listbox" : "combobox";
    case "textarea":
      return "textbox";
    case "option":
      return "option";
    case "h1":
    case "h2":
    case "h3":
    case "h4":
    case "h5":
    case "h6":
      return "heading";
    case "nav":
      return "navigation";
    case "main":
      return "main";
    case "header":
      return element.parentElement && element.parentElement.closest(SECTIONING) ? null : "banner";
    case "footer":
      return element.parentElement && element.parentElement.closest(SECTIONING) ? null : "contentinfo";
    case "aside":
      return "complementary";
    case "form":
      return "form";
    case "search":
      return "search";
    case "section":
      return element.hasAttribute("aria-label") || element.hasAttribute("aria-labelledby") ? "region" : null;
    case "dialog":
      return "dialog";
    case "ul":
    case "ol":
    case "menu":
      return "list";
    case "li":
      return "listitem";
    case "table":
      return "table";
    case "tr":
      return "row";
    case "td":
      return "cell";
    case "th":
      return element.getAttribute("scope") === "row" ? "rowheader" : "columnheader";
    case "img":
      return element.getAttribute("alt") === "" ? null : "img";
    case "p":
      return "paragraph";
    case "pre":
    case "code":
      return "code";
    case "blockquote":
      return "blockquote";
    case "figure":
      return "figure";
    case "hr":
      return "separator";
    case "progress":
      return "progressbar";
    case "meter":
      return "meter";
    case "fieldset":
    case "details":
    case "optgroup":
      return "group";
    case "article":
      return "article";
    case "output":
      return "status";
    case "iframe":
    case "frame":
      return "iframe";
    default:
      return editingHost(element) ? "textbox" : null;
  }
};

// The text a subtree shows, as an accessible name computes it: descendants' aria-label and alt
// stand for them, fields for their value, hidden parts are left out. Stops early past `max`.
// `exclude`: an element (a label's own field) or a predicate, left out with what it holds.
A.textOf = (node, max = 400, exclude = null) => {
  const parts = [];
  let length = 0;
  const push = (text) => {
    parts.push(text);
    length += text.length;
  };
  const visit = (current) => {
    for (const child of A.flatChildren(current)) {
      if (length > max) return;
      if (child.nodeType === 3) {
        push(child.data);
        continue;
      }
      if (child.nodeType !== 1 || SKIPPED_TAGS.has(child.localName)) continue;
      if (child === exclude || (typeof exclude === "function" && exclude(child))) continue;
      const style = styleOf(child);
      const shown = A.visibility(child, style);
      if (shown === "skip") continue;
      const label = child.getAttribute("aria-label");
      if (label && label.trim()) {
        push(` ${label} `);
        continue;
      }
      const tag = child.localName;
      if (tag === "img" || tag === "area") {
        push(` ${child.getAttribute("alt") || ""} `);
        continue;
      }
      if (tag === "input" || tag === "textarea") {
        // What the field shows: a text field's value, a button's caption; never a password,
        // nor the unseen value of a checkbox or radio.
        if (!UNSHOWN_VALUES.has(child.type)) push(` ${child.value} `);
        continue;
      }
      if (tag === "select") {
        push(` ${Array.from(child.selectedOptions, (option) => option.text).join(" ")} `);
        continue;
      }
      if (tag === "br") {
        push(" ");
        continue;
      }
      const block = isBlock(style);
      if (block) push(" ");
      visit(child);
      if (block) push(" ");
    }
  };
  visit(node);
  return A.squeeze(parts.join(""));
};

const byId = (element, id) => {
  const root = element.getRootNode();
  return (root.getElementById && root.getElementById(id)) || element.ownerDocument.getElementById(id);
};

// The accessible name, by a practical subset of the accname algorithm: aria-labelledby,
// aria-label, the field's labels (label[for] or a wrapping label), a button input's value,
// alt, legend/caption/figcaption, the content for roles named by their content, then title
// and placeholder.
A.nameOf = (element) => {
  const labelledBy = (element.getAttribute("aria-labelledby") || "").trim();
  if (labelledBy) {
    const text = A.squeeze(
      labelledBy
        .split(/\s+/)
        .map((id) => byId(element, id))
        .filter(Boolean)
        .map((label) => label.getAttribute("aria-label") || A.textOf(label) || label.textContent)
        .join(" ")
    );
    if (text) return text;
  }
  const ariaLabel = A.squeeze(element.getAttribute("aria-label"));
  if (ariaLabel) return ariaLabel;
  const tag = element.localName;
  if (tag === "input") {
    const type = element.type;
    if (type === "button" || type === "submit" || type === "reset") {
      return A.squeeze(element.value) || (type === "submit" ? "Submit" : type === "reset" ? "Reset" : "");
    }
    if (type === "image") return A.squeeze(element.alt || element.value) || "Submit";
  }
  if (element.labels && element.labels.length) {
    const text = A.squeeze(Array.from(element.labels, (label) => A.textOf(label, 400, element)).join(" "));
    if (text) return text;
  }
  if (tag === "img" || tag === "area") {
    const alt = A.squeeze(element.getAttribute("alt"));
    if (alt) return alt;
  }
  const captionTag = { fieldset: "legend", table: "caption", figure: "figcaption" }[tag];
  if (captionTag) {
    const caption = Array.from(element.children).find((child) => child.localName === captionTag);
    if (caption) {
      const text = A.textOf(caption);
      if (text) return text;
    }
  }
  if (tag === "svg") {
    const title = Array.from(element.children).find((child) => child.localName === "title");
    if (title && A.squeeze(title.textContent)) return A.squeeze(title.textContent);
  }
  const role = A.roleOf(element);
  if (NAME_FROM_CONTENT.has(role) || A.clickable(element, role)) {
    const text = A.textOf(element);
    if (text) return text;
  }
  const title = A.squeeze(element.getAttribute("title"));
  if (title) return title;
  return A.squeeze(element.getAttribute("placeholder") || element.getAttribute("aria-placeholder"));
};

// Something a page script made clickable without saying so: an onclick handler, or the topmost
// element of a `cursor: pointer` area (its children inherit the cursor).
A.clickable = (element, role) => {
  if (role && WIDGET_ROLES.has(role)) return false;
  if (element.onclick || element.hasAttribute("onclick")) return true;
  if (element.localName === "label" || element.localName === "html" || element.localName === "body") {
    return false;
  }
  const parent = element.parentElement;
  return styleOf(element).cursor === "pointer" && !(parent && styleOf(parent).cursor === "pointer");
};

// Can a person act on it: a link, a form control, a widget role, a focusable element, or
// something made clickable by script.
A.actionable = (element, role) => {
  const tag = element.localName;
  if (tag === "input") return element.type !== "hidden";
  if (tag === "button" || tag === "select" || tag === "textarea") return true;
  if (tag === "summary") return element.parentElement && element.parentElement.localName === "details";
  if ((tag === "a" || tag === "area") && element.hasAttribute("href")) return true;
  if (role && WIDGET_ROLES.has(role)) return true;
  if (editingHost(element)) return true;
  if (element.hasAttribute("tabindex") && element.tabIndex >= 0 && !/^(html|body)$/.test(tag)) return true;
  return A.clickable(element, role);
};

// A link's target as short as it stays unambiguous: same origin as the page -> the path (or just
// `#fragment` within this document).
A.shortUrl = (href) => {
  if (!href || /^javascript:/i.test(href)) return "";
  let url;
  try {
    url = new URL(href);
  } catch (e) {
    return A.clip(href, A.URL_MAX);
  }
  let text = href;
  if (url.origin === location.origin && url.origin !== "null") {
    const here = new URL(location.href);
    text =
      url.pathname === here.pathname && url.search === here.search && url.hash
        ? url.hash
        : url.pathname + url.search + url.hash;
  }
  return text.length > A.URL_MAX ? text.slice(0, A.URL_MAX - 1) + "…" : text;
};

const quote = (text) => JSON.stringify(text);

// The details an agent needs for one element, after its role and name.
const detailsOf = (element, role, name) => {
  const out = [];
  const tag = element.localName;
  const attr = (key) => element.getAttribute(key);
  if (role === "link" && element.href !== undefined) {
    const url = A.shortUrl(typeof element.href === "string" ? element.href : attr("href"));
    if (url) out.push(url);
  }
  if (tag === "input" || tag === "textarea") {
    const type = tag === "input" ? element.type : "textarea";
    if (tag === "input" && !SELF_EVIDENT_TYPES.has(type)) out.push(`type=${type}`);
    if (!["checkbox", "radio", "submit", "button", "reset", "image", "file"].includes(type)) {
      if (element.value) {
        out.push(`value=${type === "password" ? '"•••"' : quote(A.clip(element.value, A.VALUE_MAX))}`);
      } else {
        const placeholder = A.squeeze(attr("placeholder"));
        if (placeholder && placeholder !== name) {
          out.push(`placeholder=${quote(A.clip(placeholder, A.VALUE_MAX))}`);
        }
      }
    }
    if (type === "file" && element.files && element.files.length) {
      out.push(`value=${quote(A.clip(Array.from(element.files, (f) => f.name).join(", "), A.VALUE_MAX))}`);
    }
  } else if (tag === "select") {
    const chosen = Array.from(element.selectedOptions, (option) => A.squeeze(option.text));
    if (chosen.length) out.push(`value=${quote(A.clip(chosen.join(", "), A.VALUE_MAX))}`);
    const options = Array.from(element.options, (option) => A.clip(option.text, 40));
    const shown = options.slice(0, A.OPTIONS_SHOWN).map(quote);
    if (options.length > A.OPTIONS_SHOWN) shown.push(`…+${options.length - A.OPTIONS_SHOWN}`);
    out.push(`options=[${shown.join(",")}]`);
  } else if (VALUE_ROLES.has(role)) {
    const value = attr("aria-valuetext") || attr("aria-valuenow");
    if (value) out.push(`value=${quote(A.clip(value, A.VALUE_MAX))}`);
  }
  // States.
  const checked = tag === "input" && (element.type === "checkbox" || element.type === "radio")
    ? (element.indeterminate ? "mixed" : String(element.checked))
    : attr("aria-checked");
  if (checked === "true") out.push("checked");
  else if (checked === "mixed") out.push("mixed");
  if (attr("aria-selected") === "true" || (tag === "option" && element.selected)) out.push("selected");
  if (attr("aria-pressed") === "true") out.push("pressed");
  const expanded = tag === "summary" && element.parentElement
    ? String(element.parentElement.open)
    : attr("aria-expanded");
  if (expanded === "true") out.push("expanded");
  else if (expanded === "false") out.push("collapsed");
  if (attr("aria-current") && attr("aria-current") !== "false") out.push("current");
  if (element.matches(":disabled") || attr("aria-disabled") === "true") out.push("disabled");
  if (element.required || attr("aria-required") === "true") out.push("required");
  if ((tag === "input" || tag === "textarea") && element.readOnly) out.push("readonly");
  if (attr("aria-invalid") && attr("aria-invalid") !== "false") out.push("invalid");
  if (element.getRootNode().activeElement === element && element.ownerDocument.hasFocus()) {
    out.push("focused");
  }
  return out;
};

// The word a line starts with: the role, `h2` for a level-2 heading, `clickable` for an element
// only a script makes actionable.
const roleWord = (element, role) => {
  if (role === "heading") {
    const level = Number(element.getAttribute("aria-level")) || Number(element.localName.slice(1)) || 2;
    return `h${level}`;
  }
  return role || (element.localName === "summary" ? "button" : "clickable");
};

// One element as a line: `role "name" details [ref=…]` (the ref only when asked for).
A.lineOf = (element, options = {}) => {
  const role = options.role === undefined ? A.roleOf(element) : options.role;
  const name = options.name === undefined ? A.clip(A.nameOf(element), A.NAME_MAX) : options.name;
  let line = roleWord(element, role);
  if (name) line += ` ${quote(name)}`;
  const details = options.details === false ? [] : detailsOf(element, role, name);
  if (details.length) line += ` ${details.join(" ")}`;
  if (options.ref) line += ` [ref=${A.refFor(element)}]`;
  return line;
};

// A heading's own words: its name without the links and buttons inside it (a permalink's
// "Link to …" would otherwise repeat on every heading).
const headingText = (element) => {
  if (element.hasAttribute("aria-label") || element.hasAttribute("aria-labelledby")) return A.nameOf(element);
  return A.textOf(element, 400, (inner) => A.actionable(inner, A.roleOf(inner)));
};

const zeroSized = (element) => {
  const box = element.getBoundingClientRect();
  return box.width === 0 && box.height === 0;
};

// ---- snapshot -------------------------------------------------------------------------------

// The outline as a tree of {line, children}; a container is kept only when something is in it.
const buildOutline = (all) => {
  const node = (line) => ({ line, children: [], text: [], prefix: "" });
  const top = node(null);

  const addText = (into, text) => {
    for (let start = 0; start < text.length; start += A.TEXT_LINE_MAX) {
      into.children.push({ line: text.slice(start, start + A.TEXT_LINE_MAX) });
    }
  };
  const flush = (into) => {
    if (!into.text.length) return;
    const text = A.squeeze(into.text.join(""));
    into.text = [];
    if (text) addText(into, into.prefix + text);
    into.prefix = "";
  };
  const add = (into, line, name) => {
    flush(into);
    into.prefix = "";
    into.children.push({ line, name });
  };
  const addContainer = (into, container) => {
    flush(container);
    if (container.children.length) {
      flush(into);
      into.children.push(container);
    }
  };

  // ctx: { quiet: text here is someone's name (inside a link, a label), hidden: text here is
  //        not rendered (visibility:hidden), widget: inside an actionable element }
  const walk = (parent, into, ctx) => {
    for (const child of A.flatChildren(parent)) {
      if (child.nodeType === 3) {
        if (all && !ctx.quiet && !ctx.hidden) into.text.push(child.data);
        continue;
      }
      if (child.nodeType !== 1 || SKIPPED_TAGS.has(child.localName)) continue;
      visit(child, into, ctx);
    }
  };

  const visit = (element, into, ctx) => {
    const style = styleOf(element);
    const shown = A.visibility(element, style);
    if (shown === "skip") return;
    if (shown === "self") {
      walk(element, into, { ...ctx, hidden: style.display !== "contents" || ctx.hidden });
      return;
    }
    ctx = ctx.hidden ? { ...ctx, hidden: false } : ctx;
    const tag = element.localName;
    const block = isBlock(style);
    if (all && block) flush(into);
    const role = A.roleOf(element);

    if (tag === "iframe" || tag === "frame") {
      const doc = A.frameDocument(element);
      const name = A.clip(A.nameOf(element) || element.getAttribute("name") || "", A.NAME_MAX);
      if (doc && doc.documentElement) {
        const container = node(name ? `iframe ${quote(name)}` : "iframe");
        walk(doc.documentElement, container, { quiet: false, hidden: false, widget: false });
        addContainer(into, container);
      } else {
        let where = element.getAttribute("src") || "";
        try {
          where = new URL(where, location.href).origin;
        } catch (e) {
          // keep the attribute as written
        }
        const label = name ? `iframe ${quote(name)}` : "iframe";
        add(into, `${label} ${where} (cross-origin: its content cannot be reached)`);
      }
    } else if (tag === "br") {
      if (all) flush(into);
    } else if (!ctx.widget && A.actionable(element, role) && !zeroSized(element)) {
      const name = A.clip(A.nameOf(element), A.NAME_MAX);
      add(into, A.lineOf(element, { role, name, ref: true }), name);
      if (tag !== "select" && tag !== "textarea") walk(element, into, { ...ctx, quiet: true, widget: true });
    } else if (ctx.widget && role && WIDGET_ROLES.has(role) && !zeroSized(element)) {
      // A control nested in another (invalid HTML, but common): still reachable.
      add(into, A.lineOf(element, { role, ref: true }));
      walk(element, into, ctx);
    } else if (role === "heading" && !ctx.widget) {
      // A heading that is one link reads as one line (`h3 link "Title" /url [ref=…]`); links
      // beside a heading's text (a permalink) follow it and stay out of its name.
      const inside = node(null);
      walk(element, inside, { ...ctx, quiet: true });
      const name = A.clip(A.nameOf(element), A.NAME_MAX);
      const only = inside.children.length === 1 ? inside.children[0] : null;
      if (only && only.name === name && !only.children) {
        add(into, `${roleWord(element, role)} ${only.line}`);
      } else {
        add(into, A.lineOf(element, { role, name: A.clip(headingText(element), A.NAME_MAX) || name }));
        into.children.push(...inside.children);
      }
    } else if (role === "alert" || role === "status") {
      const text = A.clip(A.textOf(element), 200);
      if (text) add(into, `${role} ${quote(text)}`);
      walk(element, into, { ...ctx, quiet: true });
    } else if (
      LANDMARKS.has(role) ||
      role === "dialog" ||
      role === "alertdialog" ||
      (NAMED_GROUPS.has(role) && tag !== "details" && tag !== "optgroup" && A.nameOf(element))
    ) {
      const name = A.clip(A.nameOf(element), A.NAME_MAX);
      let line = role + (name ? ` ${quote(name)}` : "");
      const modal = element.matches(":modal") || element.getAttribute("aria-modal") === "true";
      if (role.endsWith("dialog") && modal) line += " modal";
      const container = node(line);
      const inner = tag === "fieldset" || tag === "table" ? { ...ctx, caption: true } : ctx;
      walk(element, container, inner);
      addContainer(into, container);
    } else if (tag === "legend" && ctx.caption) {
      walk(element, into, { ...ctx, quiet: true });
    } else if (tag === "label" && element.control) {
      walk(element, into, { ...ctx, quiet: true }); // its text is the control's name
    } else if (all && tag === "table") {
      const name = A.clip(A.nameOf(element), A.NAME_MAX);
      const container = node(name ? `table ${quote(name)}` : "table");
      walk(element, container, ctx);
      addContainer(into, container);
    } else if (all && tag === "caption") {
      // the table's name
    } else if (all && role === "row") {
      const cells = Array.from(A.flatChildren(element)).filter(
        (cell) => cell.nodeType === 1 && /^(cell|gridcell|columnheader|rowheader)$/.test(A.roleOf(cell))
      );
      const texts = cells.map((cell) => A.clip(A.textOf(cell, 200), 200).replace(/\|/g, "\\|"));
      if (texts.some(Boolean)) add(into, `| ${texts.join(" | ")} |`);
      walk(element, into, { ...ctx, quiet: true });
    } else if (all && tag === "pre") {
      flush(into);
      const lines = (element.innerText || "")
        .split("\n")
        .map((line) => line.replace(/\s+$/, ""))
        .filter(Boolean);
      if (lines.length) {
        add(into, "```");
        for (const line of lines) into.children.push({ line: line.slice(0, A.TEXT_LINE_MAX) });
        into.children.push({ line: "```" });
      }
      walk(element, into, { ...ctx, quiet: true });
    } else if (all && role === "img") {
      const name = A.clip(A.nameOf(element), A.NAME_MAX);
      if (name) add(into, `img ${quote(name)}`);
    } else if (all && tag === "li") {
      flush(into);
      into.prefix = "- ";
      walk(element, into, ctx);
    } else if (tag === "svg" || tag === "canvas" || tag === "video" || tag === "audio") {
      // drawn, not text (an svg's own name is its role img's, listed above when scope is all)
    } else {
      walk(element, into, ctx);
    }
    if (all && block) flush(into);
  };

  const root = document.documentElement;
  if (root) walk(root, top, { quiet: false, hidden: false, widget: false });
  // The body itself, when it is the document's scroller, carries no role: start at <html>.
  flush(top);
  const lines = [];
  const render = (container, depth) => {
    for (const child of container.children) {
      lines.push(" ".repeat(depth) + child.line);
      if (child.children && child.children.length) render(child, depth + 1);
    }
  };
  render(top, 0);
  return lines;
};

// Outlines are kept in the page, so that a cursor continues exactly the outline it came from,
// whichever connection asks; the last few only.
A.outlines = { next: 1, byId: new Map(), keep: 3 };

const outlinePage = (id, outline, start, budget) => {
  const lines = [];
  let used = 0;
  let index = start;
  while (index < outline.lines.length) {
    const cost = outline.lines[index].length + 1;
    if (lines.length && used + cost > budget) break;
    lines.push(outline.lines[index]);
    used += cost;
    index += 1;
  }
  return {
    tag: A.refs.tag,
    id,
    url: outline.url,
    title: outline.title,
    scope: outline.scope,
    start,
    lines,
    next: index < outline.lines.length ? index : null,
    total: outline.lines.length,
  };
};

// A new outline of the page; answers its first `budget` characters of lines (see snapshotPage).
A.snapshot = (scope, budget) => {
  const lines = buildOutline(scope === "all");
  A.pruneRefs();
  const id = A.outlines.next++;
  A.outlines.byId.set(id, { lines, url: location.href, title: document.title, scope });
  for (const old of A.outlines.byId.keys()) {
    if (A.outlines.byId.size <= A.outlines.keep) break;
    A.outlines.byId.delete(old);
  }
  return outlinePage(id, A.outlines.byId.get(id), 0, budget);
};

// More of a kept outline: the lines from `start` that fit in `budget` characters (newlines
// counted; at least one line).
A.snapshotPage = (tag, id, start, budget) => {
  if (tag !== A.refs.tag) {
    return A.error(
      "stale_cursor",
      "That cursor belongs to an earlier page (the page has changed since that snapshot); " +
        "take a new snapshot."
    );
  }
  const outline = A.outlines.byId.get(id);
  if (!outline) {
    return A.error(
      "stale_cursor",
      "That cursor's snapshot is no longer kept (newer snapshots replaced it); take a new snapshot."
    );
  }
  if (start >= outline.lines.length) {
    return A.error("bad_cursor", "That cursor points past the end of its snapshot; take a new snapshot.");
  }
  return outlinePage(id, outline, start, budget);
};

// The heading a person reads just before `element` (in page order, crossing out of shadow roots).
const HEADINGS = "h1, h2, h3, h4, h5, h6, [role=heading]";
const headingBefore = (element) => {
  let current = element;
  for (let depth = 0; current && depth < 10; depth++) {
    for (let sibling = current.previousElementSibling; sibling; sibling = sibling.previousElementSibling) {
      if (sibling.matches(HEADINGS)) return sibling;
      const inside = sibling.querySelectorAll(HEADINGS);
      if (inside.length) return inside[inside.length - 1];
    }
    current = current.parentElement || current.getRootNode().host || null;
  }
  return null;
};

// ---- find -----------------------------------------------------------------------------------

// The few elements whose accessible name or visible text contains `query` (case-insensitive):
// exact matches first, then actionable ones, then those on screen, in page order. A text match
// inside an actionable element is that element; elsewhere it is the block that holds the text.
A.find = (query, role, limit = 10) => {
  const wanted = A.squeeze(query).toLowerCase();
  const wantedRole = role ? A.squeeze(role).toLowerCase() : null;
  const found = new Map(); // element -> {order, exact, actionable, kind, snippet}
  let order = 0;

  const snippetOf = (text) => {
    const squeezed = A.squeeze(text);
    const at = squeezed.toLowerCase().indexOf(wanted);
    if (squeezed.length <= A.NAME_MAX) return squeezed;
    const from = Math.max(0, at - 25);
    const piece = squeezed.slice(from, from + A.NAME_MAX - 2);
    return (from > 0 ? "…" : "") + piece + (from + piece.length < squeezed.length ? "…" : "");
  };
  const note = (element, text, actionable, option = null) => {
    if (found.has(element)) return;
    found.set(element, {
      order: order++,
      exact: A.squeeze(text).toLowerCase() === wanted,
      actionable,
      text,
      option,
    });
  };

  // ctx: { widget: the actionable element this is inside, block: the nearest block element,
  //        hidden: text here is not rendered }
  const walk = (parent, ctx) => {
    for (const child of A.flatChildren(parent)) {
      if (child.nodeType === 3) {
        if (ctx.hidden || !ctx.block || !child.data.toLowerCase().includes(wanted)) continue;
        if (ctx.widget) note(ctx.widget, A.nameOf(ctx.widget), true);
        else note(ctx.block, A.textOf(ctx.block, 1000), false);
        continue;
      }
      if (child.nodeType !== 1 || SKIPPED_TAGS.has(child.localName)) continue;
      const style = styleOf(child);
      const shown = A.visibility(child, style);
      if (shown === "skip") continue;
      if (shown === "self") {
        walk(child, { ...ctx, hidden: style.display !== "contents" || ctx.hidden });
        continue;
      }
      const inner = { ...ctx, hidden: false };
      if (child.localName === "iframe" || child.localName === "frame") {
        const doc = A.frameDocument(child);
        if (doc && doc.documentElement) {
          walk(doc.documentElement, { widget: null, block: null, hidden: false });
        }
        continue;
      }
      const childRole = A.roleOf(child);
      if (!ctx.widget && A.actionable(child, childRole) && !zeroSized(child)) {
        const name = A.nameOf(child);
        if (name.toLowerCase().includes(wanted)) note(child, name, true);
        if (child.localName === "select") {
          // Options are not rendered until the select opens; the select answers for them.
          const option = Array.from(child.options).find((o) => o.text.toLowerCase().includes(wanted));
          if (option) note(child, option.text, true, A.squeeze(option.text));
          continue;
        }
        inner.widget = child;
      } else if (child.localName === "label" && child.control && child.control.checkVisibility()) {
        inner.widget = child.control; // its text is the control's name
      } else if (NAMED_FINDS.has(childRole) || LANDMARKS.has(childRole)) {
        const name = A.nameOf(child);
        if (name.toLowerCase().includes(wanted)) note(child, name, false);
      }
      if (isBlock(style)) inner.block = child;
      walk(child, inner);
    }
  };
  if (wanted) walk(document.documentElement, { widget: null, block: null, hidden: false });

  const view = { width: innerWidth, height: innerHeight };
  const onScreen = (element) => {
    if (element.ownerDocument !== document) return false;
    const box = element.getBoundingClientRect();
    return box.bottom > 0 && box.right > 0 && box.top < view.height && box.left < view.width;
  };
  const roleMatches = (element) => {
    if (!wantedRole) return true;
    const elementRole = A.roleOf(element);
    if (elementRole === wantedRole || roleWord(element, elementRole) === wantedRole) return true;
    return wantedRole === "textbox" && (elementRole === "searchbox" || elementRole === "combobox");
  };
  const line = (element, match) => {
    const elementRole = A.roleOf(element);
    const whole = A.lineOf(element, { role: elementRole, ref: true });
    if (match.option) return `${whole} has option ${quote(match.option)}`;
    if (match.actionable || elementRole === "heading") return whole;
    return A.lineOf(element, {
      role: elementRole || "text",
      name: snippetOf(match.text),
      details: false,
      ref: true,
    });
  };
  const ranked = (entries) =>
    entries
      .map(([element, match]) => ({
        element,
        match,
        score: (match.exact ? 4 : 0) + (match.actionable ? 2 : 0) + (onScreen(element) ? 1 : 0),
      }))
      .sort((a, b) => b.score - a.score || a.match.order - b.match.order);

  // Lines that read the same (thirty "Add to cart" buttons) say which heading they are under.
  const lines = (entries) => {
    const texts = entries.map(({ element, match }) => line(element, match));
    const bare = texts.map((text) => text.replace(/ \[ref=[^\]]*\]$/, ""));
    return texts.map((text, index) => {
      if (bare.indexOf(bare[index]) === bare.lastIndexOf(bare[index])) return text;
      const heading = headingBefore(entries[index].element);
      return heading ? `${text} under ${A.lineOf(heading, { details: false })}` : text;
    });
  };
  const all = Array.from(found.entries());
  const matching = all.filter(([element]) => roleMatches(element));
  const chosen = ranked(matching).slice(0, limit);
  const others = wantedRole && !matching.length ? ranked(all).slice(0, 3) : [];
  const result = {
    url: location.href,
    title: document.title,
    total: matching.length,
    lines: lines(chosen),
    others: lines(others),
    others_total: others.length ? all.length : 0,
  };
  A.pruneRefs();
  return result;
};
