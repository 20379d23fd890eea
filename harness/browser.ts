/**
 * A headless browser for the status page's test and screenshot: the machine's own Chromium
 * (Debian's `chromium` package, which harness/setup.sh installs), driven by playwright-core. No
 * browser is downloaded: playwright-core has none, and is pointed at the system's binary.
 */
import { existsSync } from "node:fs";
import { type Browser, type Page, chromium } from "playwright-core";

/** Where Debian and Ubuntu put it; GRAY_CHROMIUM names another. */
const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium"];

export function chromiumPath(): string | undefined {
  const given = process.env.GRAY_CHROMIUM;
  if (given !== undefined && given !== "") return given;
  return CANDIDATES.find((p) => existsSync(p));
}

export async function launchBrowser(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (executablePath === undefined)
    throw new Error(
      "no Chromium found (GRAY_CHROMIUM, or /usr/bin/chromium): apt-get install chromium, or bash harness/setup.sh",
    );
  // As root (CI, containers) Chromium's sandbox cannot start; playwright passes --no-sandbox unless asked for one.
  return chromium.launch({ executablePath, headless: true });
}

/** What went wrong inside the page: uncaught errors, console errors (a CSP refusal is one), failed requests. */
export interface PageProblems {
  errors: string[];
  /** Every URL the page asked for. */
  requests: string[];
}

/** A new page on `browser` whose problems and requests are recorded from the start. */
export async function watchedPage(
  browser: Browser,
  viewport = { width: 1280, height: 900 },
): Promise<{ page: Page; problems: PageProblems }> {
  const page = await browser.newPage({ viewport });
  const problems: PageProblems = { errors: [], requests: [] };
  page.on("pageerror", (err) => problems.errors.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.errors.push(`console: ${msg.text()}`);
  });
  page.on("requestfailed", (req) => problems.errors.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  page.on("request", (req) => problems.requests.push(req.url()));
  return { page, problems };
}
