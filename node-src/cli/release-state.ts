/**
 * The running release, in memcached under `<key_prefix>gray:release`, so there is one at a time
 * and any shell can see and steer it. Taken with `add` (a second `gray release` finds it and
 * stops, exit 2); the owner rewrites it at every reading of the routers (gets + cas: a `pause`,
 * `resume` or `abort` written meanwhile from another shell is kept, never overwritten), which
 * renews its lease; once the lease is over with nobody renewing it, the release is stale (its
 * process died) and `gray release abort` clears it. Only get/gets/add/cas/delete: twemproxy forwards them.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { author } from "../rules/revisions.ts";
import { RELEASE_KEY, releaseKey } from "../../lua-src/gray/status.ts";
import type { AdminStore } from "./store.ts";

// The key's name is the router's too: it reads the release with the rules pointer, for /gray/status.
export { RELEASE_KEY, releaseKey };

/** What another shell asks of the running release. */
export type Control = "run" | "pause" | "abort";

export interface Verdict {
  step: number;
  weight: number;
  verdict: "pass" | "fail" | "inconclusive";
  reasons: string[];
  /** Unix ms. */
  at: number;
}

/** Figures of one route over the window judged last. */
export interface Sample {
  requests: number;
  errors: number;
  /** 5xx rate, 0..1. */
  error_rate: number;
  /** ms; null without observations. */
  p99_ms: number | null;
}

export interface ReleaseState {
  format: 1;
  /** Tells this release from a later one under the same key. */
  id: string;
  /** user@host, and the process id on that host. */
  owner: string;
  pid: number;
  host: string;
  canary: string;
  steps: number[];
  /** The canary's weight when the release began (a rollback goes to 0 all the same). */
  from_weight: number;
  /** 1-based, into steps; 0 before the first. */
  step: number;
  weight: number;
  /** What the owner is doing now. */
  state: "running" | "paused" | "waiting" | "rolling_back";
  /** What was asked of it, from any shell. */
  control: Control;
  /** Who asked it (user@host). */
  control_by?: string;
  /** Unix ms. */
  started_at: number;
  /** How long each step is judged over (--interval), ms. */
  interval_ms?: number;
  /** Unix ms: when the current step's window began (its weight set, or since a resume or a failed check). */
  step_started_at?: number;
  /** Unix ms: past this, with no renewal, the release is stale. */
  lease_until: number;
  routers: string[];
  samples: { canary: Sample; stable: Sample } | null;
  /** The last verdicts, newest last (at most 20). */
  verdicts: Verdict[];
}

const KEEP_VERDICTS = 20;

export function newReleaseId(): string {
  return randomBytes(6).toString("hex");
}

export function isStale(s: ReleaseState, now = Date.now()): boolean {
  return now > s.lease_until;
}

function parse(text: string | undefined): ReleaseState | undefined {
  if (text === undefined) return undefined;
  try {
    const s = JSON.parse(text) as ReleaseState;
    return s !== null && typeof s === "object" && s.format === 1 ? s : undefined;
  } catch {
    return undefined;
  }
}

/** The release as read, and the cas token to change it. */
export async function readRelease(
  store: Pick<AdminStore, "gets">,
  prefix: string,
): Promise<{ state: ReleaseState; cas: string; raw: string } | undefined> {
  const got = await store.gets(releaseKey(prefix));
  if (got === undefined) return undefined;
  const state = parse(got.value);
  // A value that is no release state still holds the key: shown as stale, so abort can clear it.
  return {
    state:
      state ?? ({ format: 1, id: "?", owner: "?", lease_until: 0, canary: "?", steps: [] } as unknown as ReleaseState),
    cas: got.cas,
    raw: got.value,
  };
}

/** Takes the key: true when this release now holds it, false when another one does. */
export function takeRelease(store: Pick<AdminStore, "add">, prefix: string, state: ReleaseState): Promise<boolean> {
  return store.add(releaseKey(prefix), JSON.stringify(state));
}

/**
 * Changes the release by compare-and-swap, reading again on a conflict: `change` gets the state
 * as it is now (another shell's control included) and returns it changed, or undefined to leave
 * it. Undefined when the key is gone or holds another release.
 */
export async function updateRelease(
  store: Pick<AdminStore, "gets" | "cas">,
  prefix: string,
  id: string | undefined,
  change: (s: ReleaseState) => ReleaseState | undefined,
): Promise<ReleaseState | undefined> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await readRelease(store, prefix);
    if (current === undefined || (id !== undefined && current.state.id !== id)) return undefined;
    const next = change(structuredClone(current.state));
    if (next === undefined) return current.state;
    next.verdicts = next.verdicts.slice(-KEEP_VERDICTS);
    if ((await store.cas(releaseKey(prefix), JSON.stringify(next), current.cas)) === "stored") return next;
  }
  throw new Error(`${releaseKey(prefix)}: changed by others 20 times in a row`);
}

/** Deletes the key if it still holds this release. */
export async function endRelease(
  store: Pick<AdminStore, "gets" | "delete">,
  prefix: string,
  id: string,
): Promise<void> {
  const current = await readRelease(store, prefix);
  if (current?.state.id === id) await store.delete(releaseKey(prefix));
}

export function ownerHere(): { owner: string; pid: number; host: string } {
  return { owner: author(), pid: process.pid, host: hostname() };
}

const ago = (ms: number) => `${Math.max(0, Math.round(ms / 1000))} s`;

/** One line about a release, for `gray status` and for a refused second release. */
export function describeRelease(s: ReleaseState, now = Date.now()): string {
  const where = s.step === 0 ? "starting" : `step ${s.step}/${s.steps.length} at weight ${s.weight} %`;
  const head = `release of ${s.canary} by ${s.owner} (pid ${s.pid}), ${where}, started ${ago(now - s.started_at)} ago`;
  if (isStale(s, now))
    return `${head}: STALE, its lease expired ${ago(now - s.lease_until)} ago (its process is gone?); gray release abort clears it and sets ${s.canary}'s weight to 0`;
  const doing = s.control === "abort" ? "aborting" : s.state === "paused" ? "paused" : s.state;
  const last = s.verdicts.at(-1);
  return `${head}: ${doing}${last ? `; last check ${last.verdict}${last.reasons.length ? ` (${last.reasons.join("; ")})` : ""}` : ""}`;
}
