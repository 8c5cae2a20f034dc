// The fuzz targets' runner. Built by `Tests/fuzz.sh` (LEDGER_FUZZ set: libFuzzer and
// AddressSanitizer, see Package.swift), it is a libFuzzer binary whose target comes from
// LEDGER_FUZZ_TARGET; built normally, it runs inputs through a target once each:
// `ledger-fuzz TARGET FILE…` (what the corpus regression test does in process).
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
import LedgerLog
#if LEDGER_FUZZ
import CFuzzDriver
#endif

/// The fuzz targets by name.
let targets: [String: @Sendable (UnsafeRawBufferPointer) -> Void] = [
    "json": Fuzzing.json, "canonical": Fuzzing.canonical, "schema": Fuzzing.schema, "batch": LogFuzzing.batch,
]

#if LEDGER_FUZZ
let selected: @Sendable (UnsafeRawBufferPointer) -> Void = {
    guard let name = getenv("LEDGER_FUZZ_TARGET").map({ String(cString: $0) }), let target = targets[name] else {
        print("LEDGER_FUZZ_TARGET must be one of \(targets.keys.sorted().joined(separator: ", "))")
        exit(2)
    }
    return target
}()

/// The executable's entry (SwiftPM names an executable's main `<module>_main`): libFuzzer's driver.
@_cdecl("ledger_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in
        selected(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
}
#else
@main
struct LedgerFuzz {
    static func main() {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2, let target = targets[arguments[1]] else {
            print("usage: ledger-fuzz \(targets.keys.sorted().joined(separator: "|")) FILE…")
            exit(2)
        }
        for path in arguments.dropFirst(2) {
            guard let file = fopen(path, "rb") else { continue }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&buffer, 1, buffer.count, file)
                if n <= 0 { break }
                bytes += buffer[0..<n]
            }
            fclose(file)
            bytes.withUnsafeBytes { target($0) }
        }
    }
}
#endif
