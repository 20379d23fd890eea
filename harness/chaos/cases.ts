/**
 * The store faults, one case each: what breaks the store, how it is undone, and what shows the
 * fault took effect. A case that needs a router of its own (a smaller dict) says so.
 */
import { GarbageMemcached } from "../fake-memcached.ts";
import { bulkSet } from "../flags.ts";
import { Load, loopbackClients } from "../load.ts";
import { CLIENTS, type ChaosBed, FLAGGED, TIMEOUT_MS, TINY_MEMCACHED_MB } from "./bed.ts";

/** What a fault leaves as evidence that it took effect, and any load of its own to count with the case. */
export interface Evidence {
  seen: boolean;
  text: string;
  loads?: Load[];
}

/** Where the fault happens: the router's URL, how long the fault lasts. */
export interface FaultLoad {
  url: string;
  faultMs: number;
}

export interface ChaosCase {
  name: string;
  /** Needs a router with a dict this size (its own bed). */
  dictSize?: string;
  /**
   * Breaks the store; the returned function undoes it and resolves once the store is back, given
   * the flagged probe client that was started once the fault was in place (so nothing of it is cached).
   */
  inject(bed: ChaosBed, load: FaultLoad): Promise<(probe: Load) => Promise<Evidence>>;
}

/** lua_shared_dict: the smallest nginx accepts (8k is refused). */
const TINY_DICT = "12k";

/** The store failed the router: the flagged probe, with nothing cached, was answered stable. */
function probeSawStable(probe: Load): Evidence {
  const stable = probe.records.filter((r) => r.route === "stable").length;
  return { seen: stable > 0, text: `probe answered stable ${stable}×` };
}

const killed: ChaosCase = {
  name: "memcached killed (SIGKILL) and restarted",
  async inject(bed) {
    await bed.memcached.kill();
    return async (probe) => {
      await bed.memcached.startAgain();
      // It comes back empty, as a restarted memcached does; the operator's flags are set again.
      await bed.flagClients();
      return probeSawStable(probe);
    };
  },
};

const paused: ChaosCase = {
  name: `memcached paused (SIGSTOP) past the ${TIMEOUT_MS} ms timeout`,
  async inject(bed) {
    await bed.memcached.pause();
    return async (probe) => {
      await bed.memcached.resume();
      return probeSawStable(probe);
    };
  },
};

const SLOW_MS = 4 * TIMEOUT_MS;
const slow: ChaosCase = {
  name: `memcached answering slowly (${SLOW_MS} ms per reply)`,
  async inject(bed) {
    bed.proxy.setMode({ kind: "delay", ms: SLOW_MS });
    return async (probe) => {
      bed.proxy.setMode({ kind: "forward" });
      return probeSawStable(probe);
    };
  },
};

const garbage: ChaosCase = {
  name: "memcached answering garbage",
  async inject(bed) {
    // Seeded by the case, so a failure replays; every kind of garbage at random.
    const fake = await GarbageMemcached.start(6);
    bed.proxy.retarget(fake);
    return async (probe) => {
      bed.proxy.retarget(bed.memcached);
      await fake.stop();
      const evidence = probeSawStable(probe);
      return {
        seen: evidence.seen && fake.commandsAnswered > 0,
        text: `${evidence.text}, ${fake.commandsAnswered} commands answered with garbage`,
      };
    };
  },
};

/** 1 KB values: the tiny memcached holds about two thousand, so a few batches evict everything older. */
const FILL_VALUE = "x".repeat(1000);
const FILL_BATCH = 2000;

const full: ChaosCase = {
  name: `memcached full (-m ${TINY_MEMCACHED_MB}, evicting)`,
  async inject(bed) {
    const evictionsBefore = await bed.flags.evictions();
    let filling = true;
    let batch = 0;
    const filler = (async () => {
      while (filling) {
        const first = batch++ * FILL_BATCH;
        await bulkSet(
          bed.memcached.address,
          Array.from({ length: FILL_BATCH }, (_, i) => `chaos:fill:${first + i}`),
          FILL_VALUE,
        );
      }
    })();
    return async () => {
      filling = false;
      await filler;
      const evicted = (await bed.flags.evictions()) - evictionsBefore;
      const flagsLost = (await Promise.all(FLAGGED.map((k) => bed.flags.get(k)))).filter((v) => v === undefined).length;
      // The flags the fill evicted are set again, as an operator would on seeing them gone.
      await bed.flagClients();
      return { seen: evicted > 0, text: `${evicted} evictions, ${flagsLost}/${FLAGGED.length} flags evicted` };
    };
  },
};

const dictFull: ChaosCase = {
  name: `shared dict full (lua_shared_dict ${TINY_DICT}, many clients)`,
  dictSize: TINY_DICT,
  async inject(bed, { url, faultMs }) {
    const evictionsBefore = await bed.cacheEvictions();
    let posed = 0;
    const flood = Load.start({
      url,
      sources: loopbackClients(CLIENTS / 2, 105),
      durationMs: faultMs + 60_000,
      // A new documentation-range address per request, as a trusted gateway would pass on.
      headers: () => ({ "x-real-ip": `2001:db8::${(++posed).toString(16)}` }),
    });
    return async (probe) => {
      await flood.stop();
      const evictionsAfter = await bed.cacheEvictions();
      const evicted = evictionsAfter - evictionsBefore;
      // The counter lives in the same 31-key dict, beside some 40 others: when the LRU took it
      // too, it restarts lower, which shows evictions as well as a rise does.
      const counted =
        evicted >= 0
          ? `${evicted} cache evictions counted by the router`
          : `the router's eviction counter itself evicted (${evictionsBefore} → ${evictionsAfter})`;
      // Not a bar: with nothing cached every request asks memcached, and one that times out on this busy machine finds no stale entry, so stable.
      const stable = probeSawStable(probe);
      return {
        seen: evicted !== 0,
        text: `${counted}, ${posed} distinct clients; ${stable.text}`,
        loads: [flood],
      };
    };
  },
};

export const CHAOS_CASES: ChaosCase[] = [killed, paused, slow, garbage, full, dictFull];
