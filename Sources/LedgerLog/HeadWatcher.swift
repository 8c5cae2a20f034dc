#if canImport(Glibc)
import Glibc
#endif
import LedgerCore

/// Wakes a reader in another process when the writer publishes a new durable head: inotify on
/// `<data>/HEAD` (and on `segments/`, for new segment files). No polling of the disk in a loop:
/// the thread sleeps in `poll` until the kernel reports a change.
public final class HeadWatcher {
    private let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 4096)

    init(directory: String) throws {
        fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw FileIO.fail("inotify_init1", directory) }
        // The writer rewrites HEAD in place (modify) and replaces it on open (moved to).
        let mask = UInt32(IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE)
        guard inotify_add_watch(fd, directory, mask) >= 0 else {
            let error = FileIO.fail("inotify_add_watch", directory)
            Glibc.close(fd)
            throw error
        }
        _ = inotify_add_watch(fd, directory + "/segments", mask)
    }

    deinit { Glibc.close(fd) }

    /// Blocks until something changed in the data directory, or `timeout` seconds passed.
    /// Returns whether a change was reported.
    @discardableResult
    public func wait(timeout: Double) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let n = poll(&p, 1, Int32(timeout * 1000))
        guard n > 0 else { return false }
        // Drain every queued notification; one wake-up covers them all.
        while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress!, $0.count) }) > 0 {}
        return true
    }
}
