public import LedgerCore
import LedgerLog

extension LedgerEngine {
    /// What a replay did.
    public struct ReplaySummary: Sendable {
        /// Input events appended (skipped ones, already in the log when resuming, not counted).
        public var appended = 0
        public var skipped = 0
        public var decisions = 0
    }

    /// Replays recorded envelopes (NDJSON lines as `ledger import` takes them: each with its id,
    /// time and actor) one by one; with the processors, they run to quiescence after each, so
    /// every decision sits right after its trigger (SEMANTICS.md, interleaving).
    ///
    /// Resuming (the log already holds a prefix of the input): events already in the log are
    /// skipped by id, and the processors catch up from their snapshots before the next input goes
    /// in — so an interrupted replay resumed gives the same bytes as one that was not.
    ///
    /// - Parameters:
    ///   - name: how errors name the input (`Replay/x/events.ndjson`).
    ///   - snapshotEvery: save processor snapshots every this many input lines.
    public func replay(
        lines: [ArraySlice<UInt8>], name: String, policy: AppendPolicy, resume: Bool, snapshotEvery: Int = 1000,
        progress: (Int) -> Void = { _ in }
    ) async throws -> ReplaySummary {
        var summary = ReplaySummary()
        var present: Set<EventID> = []
        if resume {
            let cursor = log.cursor(from: 0)
            while let v = try cursor.next() { present.insert(v.id) }
        }
        var caughtUp = !resume || runner == nil
        for (i, line) in lines.enumerated() {
            if i & 255 == 0 { progress(i) }
            do {
                let value = try JSONParser.parse(Array(line))
                let (request, _) = try AppendRequest.importRecord(json: value)
                if let id = request.id, present.contains(id) {
                    summary.skipped += 1
                    continue
                }
                if !caughtUp {
                    summary.decisions += try await decide().count
                    caughtUp = true
                }
                _ = try await log.append([request], policy: policy)
                summary.appended += 1
                if runner != nil {
                    summary.decisions += try await decide().count
                    if (i + 1) % max(1, snapshotEvery) == 0 { try await saveSnapshots() }
                }
            } catch {
                let e = LedgerError.wrap(error)
                throw LedgerError(e.code, "\(name) line \(i + 1): \(e.message)")
            }
        }
        if !caughtUp { summary.decisions += try await decide().count }
        return summary
    }
}
