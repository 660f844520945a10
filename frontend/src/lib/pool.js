// Runs task(i) for i in 0..n-1 with at most `concurrency` in flight.
// onProgress(done, ok, failed) is called after each task. Resolves with
// { ok, failed, ms }. A task counts as ok when it resolves truthy.
export async function runPool(n, concurrency, task, onProgress = () => {}, signal = null) {
  const started = performance.now();
  let next = 0;
  let done = 0;
  let ok = 0;
  let failed = 0;
  async function worker() {
    while (next < n) {
      if (signal && signal.aborted) return;
      const i = next++;
      let good = false;
      try {
        good = Boolean(await task(i));
      } catch {
        good = false;
      }
      done++;
      if (good) ok++;
      else failed++;
      onProgress(done, ok, failed);
    }
  }
  const workers = [];
  for (let w = 0; w < Math.max(1, Math.min(concurrency, n)); w++) workers.push(worker());
  await Promise.all(workers);
  return { ok, failed, ms: performance.now() - started };
}
