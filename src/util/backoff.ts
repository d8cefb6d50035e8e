export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/**
 * Capped exponential backoff with full jitter: a uniform delay in [0, min(max, initial·2^attempt)],
 * but never below initialMs/2 so a retry storm cannot spin. `random` is injectable for tests.
 */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  return Math.max(policy.initialMs / 2, Math.round(random() * ceiling));
}
