import ArgumentParser
import LedgerCore
import LedgerLog

struct BenchStages: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stages", abstract: "Per-event cost of each stage of the append path, on one core.")

    @Option(help: "Events to time each stage over.")
    var events: Int = 200_000

    func run() throws {
        var generator = BenchEvents(seed: 9)
        let requests = generator.batch(events)
        for (stage, value) in try StageBenchmark.run(requests, policy: AppendPolicy(actor: "svc:bench")) {
            let unit = stage.contains("bytes") ? "B" : stage.hasPrefix("lines") ? "" : "ns/event"
            Terminal.line("\(stage.padding(38)) \(Format.fixed(value, 0)) \(unit)")
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
