/// An ECMA-262 regular expression, as JSON Schema's `pattern` keyword uses them.
///
/// Supported: `^ $ .`, literals and escapes (`\d \w \s \D \W \S \n \r \t \uXXXX`, escaped
/// punctuation), classes with ranges and negation, groups `( )` `(?: )`, lookaheads `(?= )`
/// `(?! )`, alternation and the quantifiers `* + ? {n} {n,} {n,m}` (greedy or lazy). Anything else
/// (back-references, lookbehind, named groups, property escapes) is refused when the schema is
/// loaded, so a schema can never rely on a feature that silently does something else here.
///
/// Matching follows JSON Schema: the pattern may match anywhere in the string unless anchored.
/// Characters are Unicode scalars (as Python's `re` counts them); the schemas of the contract only
/// use ASCII classes, for which this equals ECMA-262's UTF-16 semantics.
public struct Pattern: Sendable {
    public let source: String
    let program: Program

    public init(_ source: String) throws(LedgerError) {
        self.source = source
        var parser = PatternParser(Array(source.unicodeScalars.map(\.value)), source: source)
        let node = try parser.parse()
        var compiler = PatternCompiler()
        program = try compiler.compile(node, source: source)
    }

    /// Whether the pattern matches somewhere in `string`.
    public func matches(_ string: String) -> Bool {
        var string = string
        return string.withUTF8 { bytes -> Bool in
            var ascii = true
            for b in bytes where b >= 0x80 {
                ascii = false
                break
            }
            if ascii { return program.search(bytes) }
            let scalars = Array(String(decoding: bytes, as: UTF8.self).unicodeScalars.map(\.value))
            return scalars.withUnsafeBufferPointer { program.search($0) }
        }
    }
}

/// A set of Unicode scalars: an ASCII bitmap plus ranges above it.
struct CharClass: Sendable {
    var ascii: (UInt64, UInt64) = (0, 0)
    var ranges: [ClosedRange<UInt32>] = []
    var negated = false

    mutating func add(_ range: ClosedRange<UInt32>) {
        var lo = range.lowerBound
        while lo <= range.upperBound && lo < 128 {
            if lo < 64 { ascii.0 |= 1 << UInt64(lo) } else { ascii.1 |= 1 << UInt64(lo - 64) }
            lo += 1
        }
        if lo <= range.upperBound { ranges.append(lo...range.upperBound) }
    }

    mutating func add(_ other: CharClass) {
        precondition(!other.negated)
        ascii.0 |= other.ascii.0
        ascii.1 |= other.ascii.1
        ranges += other.ranges
    }

    @inline(__always) func contains(_ c: UInt32) -> Bool {
        let inside: Bool
        if c < 64 {
            inside = ascii.0 & (1 << UInt64(c)) != 0
        } else if c < 128 {
            inside = ascii.1 & (1 << UInt64(c - 64)) != 0
        } else {
            inside = ranges.contains { $0.contains(c) }
        }
        return inside != negated
    }

    static func of(_ ranges: ClosedRange<UInt32>...) -> CharClass {
        var c = CharClass()
        for r in ranges { c.add(r) }
        return c
    }

    static let digit = of(0x30...0x39)
    static let word = of(0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A)
    static let space = of(
        0x09...0x0D, 0x20...0x20, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A, 0x2028...0x2029,
        0x202F...0x202F, 0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF)
    static let lineTerminator = of(0x0A...0x0A, 0x0D...0x0D, 0x2028...0x2029)
    static var dot: CharClass {
        var c = lineTerminator
        c.negated = true
        return c
    }
    /// Whether no character is in both classes (conservative: false unless both are plain ASCII sets).
    func isDisjoint(from other: CharClass) -> Bool {
        guard !negated, !other.negated, ranges.isEmpty, other.ranges.isEmpty else { return false }
        return ascii.0 & other.ascii.0 == 0 && ascii.1 & other.ascii.1 == 0
    }

    func inverted() -> CharClass {
        var c = self
        c.negated.toggle()
        return c
    }
}

indirect enum PatternNode {
    case empty
    case chars(CharClass)
    case concat([PatternNode])
    case alternation([PatternNode])
    case repetition(PatternNode, min: Int, max: Int?, greedy: Bool)
    case start
    case end
    case lookahead(PatternNode, negative: Bool)

    var canMatchEmpty: Bool {
        switch self {
        case .empty, .start, .end, .lookahead: return true
        case .chars: return false
        case .concat(let nodes): return nodes.allSatisfy(\.canMatchEmpty)
        case .alternation(let nodes): return nodes.contains(where: \.canMatchEmpty)
        case .repetition(let node, let min, _, _): return min == 0 || node.canMatchEmpty
        }
    }
}

struct PatternParser {
    let s: [UInt32]
    let source: String
    var i = 0

    init(_ scalars: [UInt32], source: String) {
        s = scalars
        self.source = source
    }

    func fail(_ message: String) -> LedgerError {
        LedgerError(.internal, "pattern \(source): \(message) at character \(i)")
    }

    var atEnd: Bool { i >= s.count }
    func peek(_ c: Character) -> Bool { !atEnd && s[i] == c.unicodeScalars.first!.value }

    mutating func parse() throws(LedgerError) -> PatternNode {
        let node = try alternation()
        guard atEnd else { throw fail("unexpected ')'") }
        return node
    }

    mutating func alternation() throws(LedgerError) -> PatternNode {
        var branches = [try sequence()]
        while peek("|") {
            i += 1
            branches.append(try sequence())
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    mutating func sequence() throws(LedgerError) -> PatternNode {
        var items: [PatternNode] = []
        while !atEnd && !peek("|") && !peek(")") {
            var atom = try self.atom()
            atom = try quantified(atom)
            items.append(atom)
        }
        if items.isEmpty { return .empty }
        return items.count == 1 ? items[0] : .concat(items)
    }

    mutating func quantified(_ atom: PatternNode) throws(LedgerError) -> PatternNode {
        guard !atEnd else { return atom }
        var min = 0
        var max: Int? = nil
        switch s[i] {
        case 0x2A: min = 0; max = nil; i += 1  // *
        case 0x2B: min = 1; max = nil; i += 1  // +
        case 0x3F: min = 0; max = 1; i += 1  // ?
        case 0x7B:  // {
            let save = i
            i += 1
            guard let lo = number() else {
                i = save
                throw fail("'{' must start a quantifier {n}, {n,} or {n,m}")
            }
            min = lo
            max = lo
            if peek(",") {
                i += 1
                max = number()
            }
            guard peek("}") else { throw fail("unterminated quantifier") }
            i += 1
            if let m = max, m < min { throw fail("quantifier {\(min),\(m)} is out of order") }
        default:
            return atom
        }
        var greedy = true
        if peek("?") {
            greedy = false
            i += 1
        }
        switch atom {
        case .start, .end, .lookahead: throw fail("nothing to repeat")
        default: break
        }
        if max == nil && atom.canMatchEmpty { throw fail("unbounded repetition of an expression that can match empty") }
        return .repetition(atom, min: min, max: max, greedy: greedy)
    }

    mutating func number() -> Int? {
        var v = 0
        var any = false
        while !atEnd, s[i] >= 0x30 && s[i] <= 0x39 {
            v = v * 10 + Int(s[i] - 0x30)
            any = true
            i += 1
            if v > 100_000 { return nil }
        }
        return any ? v : nil
    }

    mutating func atom() throws(LedgerError) -> PatternNode {
        let c = s[i]
        switch c {
        case 0x5E: i += 1; return .start  // ^
        case 0x24: i += 1; return .end  // $
        case 0x2E: i += 1; return .chars(.dot)  // .
        case 0x28:  // (
            i += 1
            var look: Bool? = nil
            if peek("?") {
                i += 1
                guard !atEnd else { throw fail("unterminated group") }
                switch s[i] {
                case 0x3A: i += 1  // (?:
                case 0x3D: i += 1; look = false  // (?=
                case 0x21: i += 1; look = true  // (?!
                default: throw fail("unsupported group syntax (?\(Character(Unicode.Scalar(s[i])!))")
                }
            }
            let inner = try alternation()
            guard peek(")") else { throw fail("unterminated group") }
            i += 1
            if let negative = look { return .lookahead(inner, negative: negative) }
            return inner
        case 0x5B: return .chars(try charClass())  // [
        case 0x5C: return .chars(try escape(inClass: false))  // backslash
        case 0x2A, 0x2B, 0x3F: throw fail("nothing to repeat")
        case 0x29: throw fail("unmatched ')'")
        case 0x7B, 0x7D, 0x5D:
            // ECMA-262 Annex B allows these as literals; refuse them to keep patterns unambiguous.
            throw fail("unescaped '\(Character(Unicode.Scalar(c)!))'")
        default:
            i += 1
            return .chars(.of(c...c))
        }
    }

    mutating func charClass() throws(LedgerError) -> CharClass {
        i += 1
        var cls = CharClass()
        var negated = false
        if peek("^") {
            negated = true
            i += 1
        }
        while !atEnd && !peek("]") {
            var lo: UInt32
            if peek("\\") {
                let e = try escape(inClass: true)
                if e.negated || e.ranges.count > 0 || e.ascii.0.nonzeroBitCount + e.ascii.1.nonzeroBitCount != 1 {
                    guard !e.negated else { throw fail("negated escape inside a class") }
                    cls.add(e)
                    continue
                }
                lo = singleScalar(e)
            } else {
                lo = s[i]
                i += 1
            }
            if peek("-") && i + 1 < s.count && s[i + 1] != 0x5D {
                i += 1
                var hi: UInt32
                if peek("\\") {
                    let e = try escape(inClass: true)
                    guard !e.negated, e.ranges.isEmpty, e.ascii.0.nonzeroBitCount + e.ascii.1.nonzeroBitCount == 1 else {
                        throw fail("a class range must end in a single character")
                    }
                    hi = singleScalar(e)
                } else {
                    hi = s[i]
                    i += 1
                }
                guard lo <= hi else { throw fail("class range out of order") }
                cls.add(lo...hi)
            } else {
                cls.add(lo...lo)
            }
        }
        guard peek("]") else { throw fail("unterminated character class") }
        i += 1
        cls.negated = negated
        return cls
    }

    func singleScalar(_ c: CharClass) -> UInt32 {
        if c.ascii.0 != 0 { return UInt32(c.ascii.0.trailingZeroBitCount) }
        return UInt32(64 + c.ascii.1.trailingZeroBitCount)
    }

    mutating func escape(inClass: Bool) throws(LedgerError) -> CharClass {
        i += 1
        guard !atEnd else { throw fail("trailing backslash") }
        let c = s[i]
        i += 1
        switch c {
        case 0x64: return .digit  // d
        case 0x44: return CharClass.digit.inverted()
        case 0x77: return .word  // w
        case 0x57: return CharClass.word.inverted()
        case 0x73: return .space  // s
        case 0x53: return CharClass.space.inverted()
        case 0x6E: return .of(0x0A...0x0A)  // n
        case 0x72: return .of(0x0D...0x0D)  // r
        case 0x74: return .of(0x09...0x09)  // t
        case 0x66: return .of(0x0C...0x0C)  // f
        case 0x76: return .of(0x0B...0x0B)  // v
        case 0x30: return .of(0...0)  // \0
        case 0x75:  // uXXXX
            guard i + 4 <= s.count else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard let d = Character(Unicode.Scalar(s[i])!).hexDigitValue else { throw fail("invalid \\u escape") }
                v = v << 4 | UInt32(d)
                i += 1
            }
            return .of(v...v)
        default:
            // Escaped punctuation stands for itself; letters and digits would be features not supported here.
            let isPunctuation = (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60)
                || (c >= 0x7B && c <= 0x7E)
            guard isPunctuation else { throw fail("unsupported escape \\\(Character(Unicode.Scalar(c)!))") }
            return .of(c...c)
        }
    }
}

/// A compiled pattern for a backtracking matcher.
struct Program: Sendable {
    enum Instruction: Sendable {
        /// One character of the class.
        case char(CharClass)
        /// A greedy run of `min...max` characters of the class, backtracking one at a time unless
        /// `possessive` (what follows cannot start with a character of the class, so giving one
        /// back can never help).
        case run(CharClass, min: Int, max: Int, possessive: Bool)
        case split(Int, Int)
        case jump(Int)
        case start
        case end
        case lookahead(Int, negative: Bool)
        case match
    }
    var code: [Instruction] = []
    /// Sub-programs of lookaheads.
    var subprograms: [Program] = []
    var anchored = false
    /// Straight-line code (single characters and possessive runs between optional anchors): matched
    /// by a plain loop, without the backtracking machinery.
    var linear = false

    var isLinear: Bool {
        for instruction in code {
            switch instruction {
            case .char, .start, .end, .match: continue
            case .run(_, _, _, let possessive): if !possessive { return false }
            default: return false
            }
        }
        return true
    }

    @inline(__always)
    func runLinear<T: FixedWidthInteger>(_ input: UnsafeBufferPointer<T>, from: Int) -> Int? {
        var pos = from
        for instruction in code {
            switch instruction {
            case .char(let cls):
                guard pos < input.count, cls.contains(UInt32(input[pos])) else { return nil }
                pos += 1
            case .run(let cls, let min, let max, _):
                var n = 0
                while n < max, pos + n < input.count, cls.contains(UInt32(input[pos + n])) { n += 1 }
                guard n >= min else { return nil }
                pos += n
            case .start:
                guard pos == 0 else { return nil }
            case .end:
                guard pos == input.count else { return nil }
            case .match:
                return pos
            default:
                return nil
            }
        }
        return pos
    }

    func search<T: FixedWidthInteger>(_ input: UnsafeBufferPointer<T>) -> Bool {
        if linear {
            if anchored { return runLinear(input, from: 0) != nil }
            for start in 0...input.count where runLinear(input, from: start) != nil { return true }
            return false
        }
        if anchored { return run(input, from: 0) != nil }
        for start in 0...input.count where run(input, from: start) != nil { return true }
        return false
    }

    /// Runs from `from`; returns the end position of the first match, if any.
    func run<T: FixedWidthInteger>(_ input: UnsafeBufferPointer<T>, from: Int) -> Int? {
        // Backtrack stack: (pc, pos, low). A frame retries positions pos, pos-1, ..., low at pc.
        // It stays empty (no allocation) for patterns that never backtrack.
        var stack: [(Int, Int, Int)] = []
        var first: (Int, Int, Int)? = (0, from, from)
        while let (pc0, pos0, low) = first ?? stack.popLast() {
            first = nil
            if pos0 > low { stack.append((pc0, pos0 - 1, low)) }
            var pc = pc0
            var pos = pos0
            thread: while true {
                switch code[pc] {
                case .char(let cls):
                    guard pos < input.count, cls.contains(UInt32(input[pos])) else { break thread }
                    pos += 1
                    pc += 1
                case .run(let cls, let min, let max, let possessive):
                    var n = 0
                    while n < max, pos + n < input.count, cls.contains(UInt32(input[pos + n])) { n += 1 }
                    guard n >= min else { break thread }
                    if n > min && !possessive { stack.append((pc + 1, pos + n - 1, pos + min)) }
                    pos += n
                    pc += 1
                case .split(let a, let b):
                    stack.append((b, pos, pos))
                    pc = a
                case .jump(let target):
                    pc = target
                case .start:
                    guard pos == 0 else { break thread }
                    pc += 1
                case .end:
                    guard pos == input.count else { break thread }
                    pc += 1
                case .lookahead(let index, let negative):
                    let found = subprograms[index].run(input, from: pos) != nil
                    guard found != negative else { break thread }
                    pc += 1
                case .match:
                    return pos
                }
            }
        }
        return nil
    }
}

struct PatternCompiler {
    var program = Program()

    mutating func compile(_ node: PatternNode, source: String) throws(LedgerError) -> Program {
        if case .concat(let nodes) = node, case .start = nodes.first { program.anchored = true }
        if case .start = node { program.anchored = true }
        try emit(node, source: source)
        program.code.append(.match)
        dropLookaheadsAtEnd()
        markPossessiveRuns()
        program.linear = program.isLinear
        if program.code.count > 100_000 { throw LedgerError(.internal, "pattern \(source) is too large to compile") }
        return program
    }

    /// A lookahead right after `$` looks at the end of the input: a negative one always holds
    /// (this is the `$(?!\n)` of the contract's patterns), a positive one holds if it can match empty.
    mutating func dropLookaheadsAtEnd() {
        var pc = 0
        while pc + 1 < program.code.count {
            if case .end = program.code[pc], case .lookahead(let index, let negative) = program.code[pc + 1], !hasJumps {
                let sub = program.subprograms[index]
                let holdsAtEnd = negative ? sub.run(UnsafeBufferPointer<UInt8>(start: nil, count: 0), from: 0) == nil : sub.run(UnsafeBufferPointer<UInt8>(start: nil, count: 0), from: 0) != nil
                if holdsAtEnd {
                    program.code.remove(at: pc + 1)
                    continue
                }
            }
            pc += 1
        }
    }

    /// Whether any instruction jumps (removing instructions would then move targets).
    var hasJumps: Bool {
        program.code.contains { if case .split = $0 { return true } else if case .jump = $0 { return true } else { return false } }
    }

    /// Marks runs followed by `$` or by a character disjoint from the run's class as possessive.
    mutating func markPossessiveRuns() {
        for pc in program.code.indices {
            guard case .run(let cls, let min, let max, false) = program.code[pc], pc + 1 < program.code.count else {
                continue
            }
            let possessive: Bool
            switch program.code[pc + 1] {
            case .end: possessive = true
            case .char(let next): possessive = cls.isDisjoint(from: next)
            case .run(let next, let nextMin, _, _): possessive = nextMin > 0 && cls.isDisjoint(from: next)
            default: possessive = false
            }
            if possessive { program.code[pc] = .run(cls, min: min, max: max, possessive: true) }
        }
    }

    mutating func emit(_ node: PatternNode, source: String) throws(LedgerError) {
        switch node {
        case .empty: break
        case .chars(let cls): program.code.append(.char(cls))
        case .start: program.code.append(.start)
        case .end: program.code.append(.end)
        case .concat(let nodes):
            for n in nodes { try emit(n, source: source) }
        case .alternation(let branches):
            var jumps: [Int] = []
            for (k, branch) in branches.enumerated() {
                if k < branches.count - 1 {
                    let split = program.code.count
                    program.code.append(.split(split + 1, -1))
                    try emit(branch, source: source)
                    jumps.append(program.code.count)
                    program.code.append(.jump(-1))
                    program.code[split] = .split(split + 1, program.code.count)
                } else {
                    try emit(branch, source: source)
                }
            }
            for j in jumps { program.code[j] = .jump(program.code.count) }
        case .lookahead(let inner, let negative):
            var sub = PatternCompiler()
            try sub.emit(inner, source: source)
            sub.program.code.append(.match)
            program.subprograms.append(sub.program)
            program.code.append(.lookahead(program.subprograms.count - 1, negative: negative))
        case .repetition(let inner, let min, let max, let greedy):
            if case .chars(let cls) = inner, greedy {
                program.code.append(.run(cls, min: min, max: max ?? Int.max, possessive: false))
                return
            }
            for _ in 0..<min { try emit(inner, source: source) }
            if let max {
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(program.code.count)
                    program.code.append(.split(-1, -1))
                    try emit(inner, source: source)
                }
                let end = program.code.count
                for s in splits { program.code[s] = greedy ? .split(s + 1, end) : .split(end, s + 1) }
            } else {
                let loop = program.code.count
                program.code.append(.split(-1, -1))
                try emit(inner, source: source)
                program.code.append(.jump(loop))
                let end = program.code.count
                program.code[loop] = greedy ? .split(loop + 1, end) : .split(end, loop + 1)
            }
        }
    }
}
