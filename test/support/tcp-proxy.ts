// A TCP forwarder for tests that move a client from one server to another (a failover behind
// a stable address, as a Kubernetes Service or a pooler gives) or cut a link (a replica that
// stops receiving WAL). Real sockets; nothing is simulated past the byte stream.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** New connections go to `port`; open ones are cut, as when the old server died. */
  switchTo(port: number): void;
  /** Cuts every connection and refuses new ones until switchTo(). */
  freeze(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, host = '127.0.0.1'): Promise<TcpProxy> {
  let target: number | undefined = targetPort;
  const open = new Set<Socket>();
  const cutAll = () => {
    for (const s of open) s.destroy();
    open.clear();
  };
  const server: Server = createServer((client) => {
    if (target === undefined) {
      client.destroy();
      return;
    }
    const upstream = connect(target, host);
    open.add(client);
    open.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    switchTo(p) {
      target = p;
      cutAll();
    },
    freeze() {
      target = undefined;
      cutAll();
    },
    close: () =>
      new Promise<void>((resolve) => {
        target = undefined;
        cutAll();
        server.close(() => resolve());
      }),
  };
}
