// kafkajs 2.2.4 (its last release) computes a negative timeout in its request queue on
// Node >= 22 and Node warns "TimeoutNegativeWarning" (kafkajs issue #1751); the timer then
// fires after 1 ms, which is what kafkajs meant. Only that warning is hidden.
export function hideKafkajsTimeoutWarning(): void {
  const listeners = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (w.name === 'TimeoutNegativeWarning') return;
    if (listeners.length) for (const l of listeners) l(w);
    else process.stderr.write(`${w.name}: ${w.message}\n`);
  });
}
