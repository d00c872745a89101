// Headless Chromium for the web client's end-to-end tests: Debian's `chromium` package (.ci/run installs
// it) driven by playwright-core. Without it the tests skip visibly (describe.skip chosen when the file
// loads, the reason printed and in the suite's name) — and fail under CI=true, where it must be there.
import * as fs from 'fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.FISEDIT_CHROMIUM ?? '/usr/bin/chromium';

export function chromiumAvailable(): boolean {
  return fs.existsSync(CHROMIUM_PATH);
}

export function launchChromium(): Promise<Browser> {
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'] });
}

export function describeWithChromium(name: string, fn: () => void): void {
  if (chromiumAvailable()) {
    describe(name, fn);
    return;
  }
  const reason = `no Chromium at ${CHROMIUM_PATH} (apt-get install -y chromium, or set FISEDIT_CHROMIUM)`;
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs Chromium (CI=true: .ci/run installs it)', () => {
        throw new Error(`${reason}; CI=true requires it`);
      });
    });
    return;
  }
  console.warn(`skipping "${name}": ${reason}`);
  describe.skip(`${name} (skipped: ${reason})`, fn);
}
