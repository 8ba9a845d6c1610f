// A WebDriver client small enough to read: the W3C WebDriver commands the browser test uses,
// sent with node's fetch to a chromedriver this module starts. No packages, and nothing is
// downloaded: chromedriver and chromium come from the system (Debian: chromium-driver).
//
// https://www.w3.org/TR/webdriver2/ : every command is an HTTP request to
// /session/{id}/..., answering {"value": ...}, or {"value": {"error", "message"}} on failure.

import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The key under which WebDriver returns an element reference. */
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

/** A free TCP port on the loopback interface. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** chromedriver on a free loopback port, logging to `logPath`. Stop it with stop(). */
export async function startChromedriver({ binary = "chromedriver", logPath }) {
  const port = await freePort();
  const child = spawn(binary, [`--port=${port}`, "--allowed-ips=127.0.0.1"], { stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(logPath);
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.on("exit", (code) => (exited = code));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (exited !== null) throw new Error(`chromedriver exited with ${exited}; see ${logPath}`);
    try {
      const status = await (await fetch(`${url}/status`)).json();
      if (status.value?.ready) break;
    } catch {
      // not listening yet
    }
    if (i > 100) throw new Error(`chromedriver did not start in 10 s; see ${logPath}`);
    await sleep(100);
  }
  return {
    url,
    stop: () => {
      child.kill();
      return new Promise((resolve) => (exited !== null ? resolve() : child.once("exit", resolve)));
    },
  };
}

async function call(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const reply = await response.json();
  if (!response.ok || reply.value?.error) {
    throw new Error(`WebDriver ${method} ${url}: ${reply.value?.error}: ${reply.value?.message}`);
  }
  return reply.value;
}

/** One browser session. */
export class Session {
  /**
   * A new headless Chromium session through the driver at `driverUrl`. Its profile lives in a
   * fresh temporary folder, removed by close().
   */
  static async chromium(driverUrl, { binary = "/usr/bin/chromium", width = 1000, height = 800 } = {}) {
    const profile = mkdtempSync(join(tmpdir(), "constnet-chromium-"));
    const value = await call("POST", `${driverUrl}/session`, {
      capabilities: {
        alwaysMatch: {
          browserName: "chrome",
          "goog:chromeOptions": {
            binary,
            args: [
              "--headless",
              "--no-sandbox", // needed as root
              "--disable-gpu",
              // No network here: keep Chromium from calling home (each refused connection
              // would be retried and logged).
              "--disable-quic",
              "--no-first-run",
              "--disable-background-networking",
              "--disable-component-update",
              "--disable-sync",
              `--user-data-dir=${profile}`,
              `--window-size=${width},${height}`,
              "--force-device-scale-factor=1",
            ],
          },
        },
      },
    });
    return new Session(driverUrl, value.sessionId, profile);
  }

  constructor(driverUrl, id, profile) {
    this.base = `${driverUrl}/session/${id}`;
    this.profile = profile;
  }

  async close() {
    try {
      await call("DELETE", this.base);
    } finally {
      rmSync(this.profile, { recursive: true, force: true });
    }
  }

  navigate(url) {
    return call("POST", `${this.base}/url`, { url });
  }

  /** Runs `script` (a function body) in the page with `args`; returns what it returns. */
  execute(script, ...args) {
    return call("POST", `${this.base}/execute/sync`, { script, args });
  }

  /** Polls `script` until it returns something truthy; returns that. */
  async waitFor(script, { timeoutMs = 10000, what = script } = {}, ...args) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const value = await this.execute(script, ...args);
      if (value) return value;
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
      await sleep(25);
    }
  }

  /** The first element matching the CSS selector. */
  async find(selector) {
    const value = await call("POST", `${this.base}/element`, { using: "css selector", value: selector });
    return value[ELEMENT];
  }

  /** The element's position and size in CSS pixels, relative to the page. */
  rect(element) {
    return call("GET", `${this.base}/element/${element}/rect`);
  }

  click(element) {
    return call("POST", `${this.base}/element/${element}/click`, {});
  }

  text(element) {
    return call("GET", `${this.base}/element/${element}/text`);
  }

  /** Performs input actions: `sources` as in the spec's "Perform Actions". */
  actions(sources) {
    return call("POST", `${this.base}/actions`, { actions: sources });
  }

  /** The viewport as a PNG (a Buffer). */
  async screenshot() {
    return Buffer.from(await call("GET", `${this.base}/screenshot`), "base64");
  }

  /**
   * The browser's console messages since the last call (chromedriver's log extension, not
   * W3C), or null if the driver does not have it.
   */
  async browserLog() {
    try {
      return await call("POST", `${this.base}/se/log`, { type: "browser" });
    } catch {
      return null;
    }
  }
}
