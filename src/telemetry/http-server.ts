// The one HTTP server of a pgsink process: /metrics (Prometheus), /healthz (liveness),
// /readyz (readiness). Responses carry states and error codes only, never messages,
// URLs or config values, so nothing secret can leak through a probe or a scrape.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import type { Logger } from './logger.ts';

export interface HttpServerOptions {
  /** Default 9464 (Prometheus' registered exporter port); 0 picks a free port. */
  port?: number;
  /** Default: all interfaces (kubelet probes and scrapes come to the pod IP). */
  host?: string;
  /** Serves /metrics; without it /metrics is 404. */
  metrics?: (req: IncomingMessage, res: ServerResponse) => void;
  /** The consumer has joined its group and is running (SinkService.ready). */
  ready?: () => boolean;
  /**
   * The pipeline's own readiness with its reason (SinkService.readiness), used instead of
   * `ready` when given. Its other fields go into the 503 body as they are: keep them free
   * of messages and secrets (codes, topics, partitions, times).
   */
  readiness?: () => ReadinessReport;
  /** Resolves when Postgres answers; see postgresCheck(). Without it, only `ready` counts. */
  checkPostgres?: () => Promise<void>;
  /** A Postgres check slower than this fails as "timeout". Default 1000 ms. */
  postgresTimeoutMs?: number;
  /** A Postgres result is reused this long, so probes and curls cannot hammer it. Default 1000 ms. */
  postgresCacheMs?: number;
  /** /healthz fails after the event loop stalled longer than this. Default 5000 ms. */
  maxEventLoopStallMs?: number;
  /**
   * ...within the last this many ms. Default 10 s, about one liveness period: a single stall
   * fails one probe, and only stalls that keep coming add up to failureThreshold.
   */
  stallWindowMs?: number;
  logger?: Logger;
}

type CheckResult = { ok: true } | { ok: false; state: string };

export interface ReadinessReport {
  ready: boolean;
  reason?: string;
  /** The consumer's state in one word, for `checks.consumer`. */
  consumer?: string;
  [detail: string]: unknown;
}

const HEARTBEAT_MS = 250;

export class HttpServer {
  private readonly o: HttpServerOptions;
  private readonly server: Server;
  private startPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private lastBeat = 0;
  private lastStallAt = -Infinity;
  private lastStallMs = 0;
  private pg: { at: number; result: CheckResult } | undefined;
  private pgPending: Promise<CheckResult> | undefined;
  /** The query itself, which may outlive its timeout: never run two at once. */
  private pgQuery: Promise<unknown> | undefined;

  constructor(opts: HttpServerOptions) {
    this.o = opts;
    this.server = createServer((req, res) => this.handle(req, res));
    // Probes and scrapes are tiny; a client that trickles its headers gets cut off.
    this.server.headersTimeout = 5_000;
    this.server.requestTimeout = 10_000;
  }

  /** The bound port (after start()); useful with port 0. */
  get port(): number {
    const a = this.server.address() as AddressInfo | null;
    if (!a) throw new Error('HTTP server is not listening');
    return a.port;
  }

  /** Listens; resolves once bound, rejects with a clear message when the port is taken. */
  start(): Promise<void> {
    if (this.stopPromise) return Promise.reject(new Error('HTTP server was stopped'));
    this.startPromise ??= new Promise<void>((resolve, reject) => {
      const port = this.o.port ?? 9464;
      const onError = (err: NodeJS.ErrnoException): void => {
        const where = `${this.o.host ?? '*'}:${port}`;
        reject(
          new Error(`cannot listen on ${where} (${err.code ?? err.message}); set http.port to a free port`, {
            cause: err,
          }),
        );
      };
      this.server.once('error', onError);
      this.server.listen({ port, ...(this.o.host ? { host: this.o.host } : {}) }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.o.logger?.warn({ err: err.message }, 'HTTP server error'));
        this.startHeartbeat();
        resolve();
      });
    });
    return this.startPromise;
  }

  /** Closes the listener and open keep-alive connections; idempotent. */
  stop(): Promise<void> {
    this.stopPromise ??= (async () => {
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = undefined;
      if (!this.startPromise) return;
      await this.startPromise.catch(() => undefined);
      if (!this.server.listening) return;
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        // Prometheus keeps its scrape connection open; close() alone would wait for it.
        this.server.closeAllConnections();
      });
    })();
    return this.stopPromise;
  }

  // ---------------------------------------------------------------- liveness

  /**
   * A timer that should fire every HEARTBEAT_MS; when it fires late, the event loop was
   * blocked for the difference. A loop blocked right now cannot answer the probe at all
   * (the kubelet's timeout catches that); this catches stalls between probes.
   */
  private startHeartbeat(): void {
    this.lastBeat = performance.now();
    this.heartbeat = setInterval(() => {
      const now = performance.now();
      this.noteStall(now - this.lastBeat - HEARTBEAT_MS, now);
      this.lastBeat = now;
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private noteStall(ms: number, now: number): void {
    if (ms > (this.o.maxEventLoopStallMs ?? 5_000)) {
      this.lastStallAt = now;
      this.lastStallMs = ms;
    }
  }

  private liveness(): { status: number; body: Record<string, unknown> } {
    const now = performance.now();
    // The stall may have ended just now, in this loop turn, before the timer could see it.
    if (this.heartbeat) this.noteStall(now - this.lastBeat - HEARTBEAT_MS, now);
    if (now - this.lastStallAt <= (this.o.stallWindowMs ?? 10_000)) {
      return {
        status: 503,
        body: {
          status: 'unhealthy',
          reason: 'event loop stalled',
          stalledMs: Math.round(this.lastStallMs),
          secondsAgo: Math.round((now - this.lastStallAt) / 1000),
        },
      };
    }
    return { status: 200, body: { status: 'ok' } };
  }

  // ---------------------------------------------------------------- readiness

  private pipelineReadiness(): ReadinessReport {
    if (this.o.readiness) return this.o.readiness();
    const ready = this.o.ready ? this.o.ready() : true;
    return ready
      ? { ready, consumer: 'ok' }
      : {
          ready,
          consumer: 'not joined',
          reason: 'the consumer has not joined its group (starting, rebalancing away, or stopping)',
        };
  }

  private async readiness(): Promise<{ status: number; body: Record<string, unknown> }> {
    const { ready, reason: why, consumer, ...details } = this.pipelineReadiness();
    const pgResult: CheckResult = this.o.checkPostgres ? await this.postgres() : { ok: true };
    const postgres = pgResult.ok ? 'ok' : pgResult.state;
    const checks = {
      consumer: consumer ?? (ready ? 'ok' : 'not ready'),
      ...(this.o.checkPostgres ? { postgres } : {}),
    };
    if (ready && pgResult.ok) return { status: 200, body: { status: 'ready', checks } };
    // The pipeline's reason first: a stuck partition or a stopped route says more than a
    // Postgres check that fails along with it.
    const reason = !ready ? (why ?? 'not ready') : `postgres check failed (${postgres})`;
    const extra = Object.fromEntries(
      Object.entries(details).filter(([, v]) => !(Array.isArray(v) && v.length === 0)),
    );
    return { status: 503, body: { status: 'not ready', reason, checks, ...extra } };
  }

  private postgres(): Promise<CheckResult> {
    const now = performance.now();
    if (this.pg && now - this.pg.at < (this.o.postgresCacheMs ?? 1_000))
      return Promise.resolve(this.pg.result);
    this.pgPending ??= this.runPostgresCheck().then((result) => {
      this.pg = { at: performance.now(), result };
      this.pgPending = undefined;
      return result;
    });
    return this.pgPending;
  }

  private async runPostgresCheck(): Promise<CheckResult> {
    // A query that outlived its timeout is still queued in the pool: report it, don't add another.
    if (this.pgQuery) return { ok: false, state: 'timeout' };
    const timeoutMs = this.o.postgresTimeoutMs ?? 1_000;
    const check = this.o.checkPostgres!;
    const query = Promise.resolve().then(check);
    this.pgQuery = query;
    const settled = query.then(
      (): CheckResult => ({ ok: true }),
      (err: unknown): CheckResult => {
        this.o.logger?.debug(
          { err: err instanceof Error ? err.message : String(err) },
          'readiness: postgres check failed',
        );
        return { ok: false, state: `failed: ${errorCode(err)}` };
      },
    );
    void settled.finally(() => {
      if (this.pgQuery === query) this.pgQuery = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<CheckResult>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, state: 'timeout' }), timeoutMs);
    });
    try {
      return await Promise.race([settled, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  // ---------------------------------------------------------------- routing

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(req, res, 405, { status: 'method not allowed' });
      return;
    }
    switch (path) {
      case '/metrics':
        if (!this.o.metrics) break;
        try {
          this.o.metrics(req, res);
        } catch (err) {
          this.o.logger?.warn(
            { err: err instanceof Error ? err.message : String(err) },
            'metrics handler failed',
          );
          if (!res.headersSent) send(req, res, 500, { status: 'metrics unavailable' });
        }
        return;
      case '/healthz': {
        const { status, body } = this.liveness();
        send(req, res, status, body);
        return;
      }
      case '/readyz':
        this.readiness().then(
          ({ status, body }) => send(req, res, status, body),
          () => send(req, res, 503, { status: 'not ready', reason: 'readiness check failed' }),
        );
        return;
    }
    send(req, res, 404, { status: 'not found', paths: ['/metrics', '/healthz', '/readyz'] });
  }
}

function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: Record<string, unknown>,
): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/** A code safe to show: SQLSTATE or errno name; never the message (it may name hosts or users). */
function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{1,32}$/.test(code)) return code;
  return 'error';
}

/**
 * The readiness query. Give it its own small pool (see createCheckPool) rather than the sink's:
 * with every sink connection busy in a flush, a shared pool would make a healthy, busy
 * consumer look unready.
 */
export function postgresCheck(pool: pg.Pool): () => Promise<void> {
  return async () => {
    await pool.query('SELECT 1');
  };
}

/**
 * A one-connection pool for the readiness check. Pass the sink's own client settings
 * (pgClientConfig(config), TLS included) or a URL.
 */
export function createCheckPool(
  client: pg.ClientConfig | string,
  opts: { applicationName?: string; timeoutMs?: number; logger?: Logger } = {},
): pg.Pool {
  const timeoutMs = opts.timeoutMs ?? 1_000;
  const pool = new pg.Pool({
    ...(typeof client === 'string' ? { connectionString: client } : client),
    max: 1,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: opts.applicationName ?? 'pgsink:readyz',
  });
  // An idle connection whose server goes away emits 'error'; unheard, it would crash the process.
  pool.on('error', (err) => opts.logger?.debug({ err: err.message }, 'readiness pool: idle connection lost'));
  return pool;
}
