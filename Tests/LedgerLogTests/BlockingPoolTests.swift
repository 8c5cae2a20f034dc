import Testing
import LedgerLog

/// The server's background folds run below the priority of the threads that answer requests.
@Suite struct BlockingPoolTests {
    /// Blocking work and async work preferring the pool both run on its threads, at its nice
    /// value; the shared pool keeps the process's own.
    @Test func backgroundWorkRunsAtTheLowerPriority() async throws {
        let pool = BlockingPool(name: "test-nice", threads: 1, nice: 7)
        let base = await BlockingPool.shared.run { threadPriority() }
        #expect(await pool.run { threadPriority() } == 7)
        let fromAsync = await withTaskExecutorPreference(pool) { threadPriority() }
        #expect(fromAsync == 7)
        #expect(base != 7)
    }
}
