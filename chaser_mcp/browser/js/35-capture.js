// Screenshots: what capture.py needs from the page to clip a capture (see capture.py).

// The screen the page is shown on, so a capture can state the same device metrics (capture.py
// explains why it must). outerWidth/outerHeight are the emulated view, whatever the page's zoom.
A.screenMetrics = () => {
  const orientation = screen.orientation || { type: "portrait-primary", angle: 0 };
  const mobile =
    navigator.userAgentData && typeof navigator.userAgentData.mobile === "boolean"
      ? navigator.userAgentData.mobile
      : /Mobi|Android/.test(navigator.userAgent);
  return {
    dpr: devicePixelRatio,
    width: outerWidth,
    height: outerHeight,
    screenWidth: screen.width,
    screenHeight: screen.height,
    orientation: orientation.type,
    angle: orientation.angle,
    mobile,
  };
};

// One element's box in top-document CSS px (what Page.captureScreenshot's clip takes), after
// scrolling it to the middle of the screen (lazy images load, sticky headers settle). An element
// in a same-origin iframe is offset by each frame's content box on the way out.
A.captureBox = (target) => {
  const found = A.resolve(target);
  if (found.error) return found;
  const element = found.element;
  const label = `${A.describe(element)} [ref=${A.refFor(element)}]`;
  element.scrollIntoView({ block: "center", inline: "center", behavior: "instant" });
  const box = element.getBoundingClientRect();
  if (box.width < 1 || box.height < 1) {
    return A.error(
      "no_box",
      `${label} has no size on screen (it is hidden or empty); capture a visible element or the page.`
    );
  }
  let x = box.left;
  let y = box.top;
  let view = element.ownerDocument.defaultView;
  while (view && view.frameElement) {
    const frame = view.frameElement;
    const outer = frame.getBoundingClientRect();
    const style = getComputedStyle(frame);
    x += outer.left + frame.clientLeft + parseFloat(style.paddingLeft);
    y += outer.top + frame.clientTop + parseFloat(style.paddingTop);
    view = frame.ownerDocument.defaultView;
  }
  return { label, x: x + scrollX, y: y + scrollY, width: box.width, height: box.height };
};
