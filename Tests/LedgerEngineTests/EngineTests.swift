import Foundation
import LedgerCore
@testable import LedgerEngine
import LedgerLog
import LedgerProcessors
import LedgerProjections
import LedgerSimulator
import LedgerTestSupport
import ServiceLifecycle
import Testing

@Suite struct EngineTests {
    /// Per event (each client event, then the processors to quiescence) the simulated platform's
    /// decisions sit right after their triggers; the same events given to a second engine in the
    /// same way give the same bytes.
    @Test func perEventModeIsDeterministic() async throws {
        func play(_ dir: String) async throws -> [String] {
            var options = EngineOptions()
            options.log.fsync = .never
            let engine = try await LedgerEngine.open(directory: dir, options: options)
            let play = PlatformPlay(config: SimulationConfig(seed: 5, days: 1))
            let counts = try await engine.drive(policy: AppendPolicy(actor: "user:test", mode: .admin), next: { play.next()?.request }) { d in
                play.observe(type: d.decision.type, data: d.decision.data, time: d.decision.notBefore)
            }
            #expect(counts.inputs > 1000)
            #expect(counts.decisions > 100)
            try await engine.project()
            #expect(try engine.store!.checkpoint().nextOffset == engine.head)
            var hashes: [String] = []
            let cursor = engine.log.cursor(from: 0)
            while let v = try cursor.next() { hashes.append(try v.envelope().hash.description) }
            try await engine.close()
            return hashes
        }
        let a = TemporaryDirectory("engine-a")
        let b = TemporaryDirectory("engine-b")
        let first = try await play(a.path)
        let second = try await play(b.path)
        #expect(first == second)
    }

    /// Snapshots taken during `decide()` are captured at once and encoded and written in the
    /// background while the processors go on: what is written must be the state at its
    /// checkpoint. A runner restored from it re-derives everything after it without appending,
    /// and ends in the same state as the engine's processors.
    @Test func backgroundSnapshotsHoldTheStateAtTheirCheckpoint() async throws {
        let dir = TemporaryDirectory("engine-snapshots")
        var options = EngineOptions()
        options.log.fsync = .never
        options.projections = false
        options.snapshotEvery = 300
        let engine = try await LedgerEngine.open(directory: dir.path, options: options)
        let play = PlatformPlay(config: SimulationConfig(seed: 6, days: 1))
        _ = try await engine.drive(policy: AppendPolicy(actor: "user:test", mode: .admin), next: { play.next()?.request }) { d in
            play.observe(type: d.decision.type, data: d.decision.data, time: d.decision.notBefore)
        }
        try await engine.finishSnapshot()
        let head = engine.head
        let runner = try #require(engine.runner)
        let restored = ProcessorRunner(log: engine.log, dataDirectory: dir.path)
        try restored.loadSnapshots()
        #expect(restored.checkpoints.allSatisfy { $0 > 0 && $0 < head }, "a snapshot from the middle of the run")
        let rederived = try await restored.runToQuiescence()
        #expect(!rederived.isEmpty && rederived.allSatisfy { $0.offset < head })
        #expect(engine.head == head)
        for (a, b) in zip(runner.processors, restored.processors) {
            #expect(try a.snapshot() == b.snapshot(), "\(a.name)")
        }
        try await engine.close()
    }

    /// Continuous mode: the processors and the projector follow the head as services, and a
    /// graceful shutdown leaves snapshots at the head and projections caught up.
    @Test func servicesFollowTheHeadAndCheckpointOnShutdown() async throws {
        let dir = TemporaryDirectory("engine-services")
        var options = EngineOptions()
        options.log.fsync = .never
        let engine = try await LedgerEngine.open(directory: dir.path, options: options)
        let log = engine.log
        let store = engine.store!
        let (processors, projector, logService) = engine.services()
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [logService, projector!, processors!], logger: options.logger))
        let admin = AppendPolicy(actor: "user:test", mode: .admin)
        func event(_ type: String, _ data: JSONObject, _ time: String) -> AppendRequest {
            AppendRequest(stream: EventCatalog.standard.type(type)!.stream(for: data)!, type: type, data: data, id: .random(), time: Timestamp(time)!, actor: "user:test")
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            _ = try await log.append([event("node.registered", ["node": "n1", "gpuType": "a100", "gpuCount": 8], "2026-11-23T00:00:00.000Z")], policy: admin)
            _ = try await log.append([event("quota.set", ["team": "vision", "gpuType": "a100", "nominal": 8], "2026-11-23T00:00:01.000Z")], policy: admin)
            _ = try await log.append([event("job.queued", ["job": "j1", "team": "vision", "gpuType": "a100", "gpus": 4, "priority": 1], "2026-11-23T00:00:02.000Z")], policy: admin)
            // The scheduler admits the job on its own (job.admitted + gpu.allocated after the 3 inputs).
            var admitted = false
            for _ in 0..<2000 where !admitted {
                try await Task.sleep(for: .milliseconds(5))
                admitted = log.head >= 5
            }
            #expect(admitted, "the processor service did not decide within 10 s")
            var projected = false
            for _ in 0..<2000 where !projected {
                try await Task.sleep(for: .milliseconds(5))
                projected = try store.checkpoint().nextOffset == log.head
            }
            #expect(projected, "the projector service did not catch up within 10 s")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let types = try (0..<log.head).map { try log.event(at: $0)!.type }
        #expect(types == ["node.registered", "quota.set", "job.queued", "job.admitted", "gpu.allocated"])
        // Snapshots at the head: a new engine decides nothing more.
        let again = try await LedgerEngine.open(directory: dir.path, options: options)
        #expect(again.runner!.checkpoints.allSatisfy { $0 == 5 })
        #expect(try await again.decide().isEmpty)
        #expect(again.head == 5)
        try await again.close()
    }
}
