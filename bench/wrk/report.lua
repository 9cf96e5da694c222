-- Appended to other wrk scripts: prints one machine-readable line.
function done(summary, latency, requests)
  io.write(string.format("WRK_RESULT rps=%.1f p50_us=%d p99_us=%d mean_us=%.1f errors=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    latency.mean, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.requests))
end
