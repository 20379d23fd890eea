/** `gray upgrade`: nginx's binary upgrade with a health check between the new master taking over and the old one leaving. */
import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";
import { BinaryUpgrade } from "../nginx-master.ts";

/** Probes of a health check: every one must answer 2xx. */
const HEALTH_PROBES = 5;
const HEALTH_GAP_MS = 200;

/** undefined when healthy, else what the failing probe got. */
export async function healthProblem(url: string): Promise<string | undefined> {
  for (let i = 1; i <= HEALTH_PROBES; i++) {
    try {
      // A new connection each time: a kept-alive one could still be held by a retiring worker.
      const res = await request(url, { reset: true, headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      if (res.statusCode < 200 || res.statusCode > 299)
        return `${url} answered ${res.statusCode} (probe ${i} of ${HEALTH_PROBES})`;
    } catch (err) {
      return `${url} did not answer (probe ${i} of ${HEALTH_PROBES}): ${(err as Error).message}`;
    }
    if (i < HEALTH_PROBES) await sleep(HEALTH_GAP_MS);
  }
  return undefined;
}

export type UpgradeOutcome =
  | { event: "upgraded"; oldPid: number; newPid: number }
  | { event: "rolled_back"; oldPid: number; newPid: number; problem: string };

/**
 * `gray upgrade`: USR2, wait for the new master; WINCH, so that only the new master's workers
 * accept (before that both generations share the listening sockets, and a probe could not tell
 * which one answered); health check; then QUIT the old master, or on a failed check roll back
 * (HUP old, QUIT new). Each step is reported as it is done.
 */
export async function upgrade(
  pidFile: string,
  healthUrl: string | undefined,
  report: (line: string) => void,
): Promise<UpgradeOutcome> {
  const up = await BinaryUpgrade.begin(pidFile);
  const pids = { oldPid: up.oldPid, newPid: up.newPid };
  report(`USR2: new master ${up.newPid} is serving beside the old master ${up.oldPid}`);
  await up.retireOldWorkers();
  report(`WINCH: the old master's workers have left; master ${up.newPid} serves alone`);
  const problem = healthUrl === undefined ? undefined : await healthProblem(healthUrl);
  if (problem !== undefined) {
    report(`health check failed: ${problem}`);
    await up.rollback();
    report(`HUP ${up.oldPid}, QUIT ${up.newPid}: the old master serves again`);
    return { event: "rolled_back", ...pids, problem };
  }
  if (healthUrl !== undefined) report(`health check: ${healthUrl} answered 2xx ${HEALTH_PROBES} times`);
  await up.finish();
  report(`QUIT ${up.oldPid}: upgraded, master ${up.newPid}`);
  return { event: "upgraded", ...pids };
}
