/** Milliseconds since the epoch. Injected wherever time decides behaviour, so tests need no sleeps. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
