// common.mjs: what signin.mjs and render.mjs share: the two browsers people use (a desktop
// window with JavaScript, a phone without), the flags that keep Chromium off the network, and
// reading a PNG's size.

// A 1280x800 desktop window with JavaScript on; a 360x740 touch phone with JavaScript off (the
// pages are server-rendered forms and must work without it).
export const VARIANTS = {
  desktop: { viewport: { width: 1280, height: 800 }, javaScriptEnabled: true },
  phone: {
    viewport: { width: 360, height: 740 },
    deviceScaleFactor: 1,
    isMobile: true,
    hasTouch: true,
    javaScriptEnabled: false,
  },
};

// Flags that keep Chromium quiet on a machine without network access: no background
// connections (component updates, sync, safe browsing lists, QUIC probes), no first-run UI.
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Width and height from a PNG's IHDR chunk.
export function pngSize(buffer) {
  return { width: buffer.readUInt32BE(16), height: buffer.readUInt32BE(20) };
}
