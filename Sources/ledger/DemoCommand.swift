import ArgumentParser
import LedgerCore
import LedgerLog

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "The main job: a simulated GPU platform through the real log.")
    @OptionGroup var data: DataDirectory
    func run() async throws {
        Terminal.line("demo: not yet")
    }
}
