// Superpipe's I/O statistics through swift-metrics (Docs/statistics.md, "swift-metrics").
//
// The data path counts in atomics (Superpipe's `IOStatistics`); this module copies snapshots into
// swift-metrics when asked, or periodically: never one swift-metrics call per I/O.

public import CoreMetrics
public import Superpipe
import Synchronization

/// Copies `IOStatistics` snapshots of contexts and resource handles into swift-metrics: counters
/// (incremented by what grew since the previous export of the same dimensions), gauges for the
/// levels, and the latency histogram as per-bucket counters and quantile gauges. Exports happen
/// when the application calls `export` (or from `run(every:dimensions:snapshot:)`), so the I/O
/// path never calls swift-metrics.
///
/// Metric names are `<label>.<field>` (`superpipe.reads`, `superpipe.blocks_read`, ...; the table
/// is in Docs/statistics.md), with the dimensions given to `export` plus, for the per-port
/// counters, `("port", "0")`..., and for the latency buckets `("upper_ns", "1024")`...
public final class StatisticsExporter: Sendable {
  /// The prefix of every metric name.
  public let label: String
  private let factory: (any MetricsFactory)?
  /// The last snapshot exported per dimension set: counters are incremented by the difference.
  private let exported = Mutex<[[String]: IOStatistics]>([:])

  /// An exporter.
  ///
  /// - Parameters:
  ///   - label: The prefix of the metric names ("superpipe" by default).
  ///   - factory: The metrics backend; nil for the one bootstrapped in `MetricsSystem`.
  public init(label: String = "superpipe", factory: (any MetricsFactory)? = nil) {
    self.label = label
    self.factory = factory
  }

  /// Exports one snapshot: each counter grows by what its field grew since the previous export
  /// with the same dimensions (the whole value the first time, and after a field went down: a new
  /// context or handle exported under the same dimensions); the gauges take the levels.
  ///
  /// - Parameters:
  ///   - statistics: A snapshot (`Context.statistics`, a handle's `statistics`).
  ///   - dimensions: The dimensions that tell this context or handle apart, e.g.
  ///     `[("context", "orders")]` or `[("device", "/dev/sdc"), ("handle", "1")]`.
  public func export(_ statistics: IOStatistics, dimensions: [(String, String)] = []) {
    let key = dimensions.flatMap { [$0.0, $0.1] }
    let previous = exported.withLock { last in
      defer { last[key] = statistics }
      return last[key] ?? IOStatistics()
    }
    for (now, before) in zip(Self.counters(statistics), Self.counters(previous)) {
      increment("\(label).\(now.name)", dimensions, by: now.value, since: before.value)
    }
    for (port, counters) in statistics.ports.enumerated() {
      let before = port < previous.ports.count ? previous.ports[port] : PortStatistics()
      let portDimensions = dimensions + [("port", String(port))]
      increment("\(label).port.link_downs", portDimensions, by: counters.linkDowns, since: before.linkDowns)
      increment("\(label).port.no_logins", portDimensions, by: counters.noLogins, since: before.noLogins)
      increment(
        "\(label).port.transport_errors", portDimensions, by: counters.transportErrors, since: before.transportErrors)
    }
    for (bucket, count) in statistics.latency.buckets.enumerated() {
      let before = bucket < previous.latency.buckets.count ? previous.latency.buckets[bucket] : 0
      let upper = String(LatencyHistogram.upperBound(ofBucket: bucket))
      increment("\(label).latency.bucket", dimensions + [("upper_ns", upper)], by: count, since: before)
    }
    gauge("\(label).active_requests", dimensions).record(Int64(clamping: statistics.activeRequests))
    gauge("\(label).max_active", dimensions).record(Int64(clamping: statistics.maxActive))
    for (name, fraction) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
      if let value = statistics.latency.quantile(fraction) {
        gauge("\(label).latency.\(name)_ns", dimensions).record(Int64(clamping: value))
      }
    }
  }

  /// Exports a context's statistics (`Context.statistics`).
  ///
  /// - Parameters:
  ///   - context: The context.
  ///   - dimensions: What tells the context apart (its token changes with every recovery, so it
  ///     is not added: name the context yourself, e.g. `[("context", "orders")]`).
  public func export(_ context: borrowing Context, dimensions: [(String, String)] = []) {
    export(context.statistics, dimensions: dimensions)
  }

  /// Exports a physical LUN handle's statistics, with the dimensions `device` (its primary path)
  /// and `handle` (its resource handle number) after the ones given.
  ///
  /// - Parameters:
  ///   - lun: The handle.
  ///   - dimensions: More dimensions (e.g. the context's name).
  public func export(_ lun: borrowing PhysicalLUN, dimensions: [(String, String)] = []) {
    export(lun.statistics, dimensions: dimensions + [("device", lun.path), ("handle", String(lun.handle.rawValue))])
  }

  /// Exports a virtual LUN handle's statistics, with the dimensions `device` (the physical LUN's
  /// disk node) and `handle` (its resource handle number) after the ones given.
  ///
  /// - Parameters:
  ///   - lun: The handle.
  ///   - dimensions: More dimensions (e.g. the context's name).
  public func export(_ lun: borrowing VirtualLUN, dimensions: [(String, String)] = []) {
    export(lun.statistics, dimensions: dimensions + [("device", lun.path), ("handle", String(lun.handle.rawValue))])
  }

  /// Exports `snapshot()` every `interval` until the calling task is cancelled (run it in a task
  /// of its own; the closure typically reads `statistics` of a context the application keeps in
  /// a class).
  ///
  /// - Parameters:
  ///   - interval: The time between exports.
  ///   - dimensions: The dimensions of every export.
  ///   - snapshot: Returns the statistics to export.
  public func run(
    every interval: Duration, dimensions: [(String, String)] = [], snapshot: @Sendable () -> IOStatistics
  ) async {
    while !Task.isCancelled {
      export(snapshot(), dimensions: dimensions)
      do { try await Task.sleep(for: interval) } catch { break }
    }
  }

  /// The counter fields and their metric names.
  private static func counters(_ s: IOStatistics) -> [(name: String, value: UInt64)] {
    [
      ("reads", s.reads), ("writes", s.writes), ("write_sames", s.writeSames),
      ("blocks_read", s.blocksRead), ("blocks_written", s.blocksWritten), ("blocks_zeroed", s.blocksZeroed),
      ("command_errors", s.commandErrors), ("afu_errors", s.afuErrors), ("check_conditions", s.checkConditions),
      ("medium_errors", s.mediumErrors), ("hardware_errors", s.hardwareErrors),
      ("unit_attentions", s.unitAttentions), ("illegal_requests", s.illegalRequests), ("not_ready", s.notReady),
      ("busy", s.busy), ("transport_errors", s.transportErrors), ("no_channels", s.noChannels),
      ("timeouts", s.timeouts), ("aborts", s.aborts), ("adapter_gone", s.adapterGone), ("retries", s.retries),
      ("verifies", s.verifies), ("failovers", s.failovers), ("failed_requests", s.failedRequests),
      ("no_command_room", s.noCommandRoom), ("adapter_resets", s.adapterResets),
      ("context_resets", s.contextResets), ("context_reset_failures", s.contextResetFailures),
      ("recoveries", s.recoveries),
    ]
  }

  /// Increments a counter by `value - before` (by `value` when it went down: a new source).
  private func increment(_ name: String, _ dimensions: [(String, String)], by value: UInt64, since before: UInt64) {
    let delta = value >= before ? value - before : value
    guard delta > 0 else { return }
    let counter =
      if let factory { Counter(label: name, dimensions: dimensions, factory: factory) } else {
        Counter(label: name, dimensions: dimensions)
      }
    counter.increment(by: Int64(clamping: delta))
  }

  private func gauge(_ name: String, _ dimensions: [(String, String)]) -> Gauge {
    if let factory { Gauge(label: name, dimensions: dimensions, factory: factory) } else {
      Gauge(label: name, dimensions: dimensions)
    }
  }
}
