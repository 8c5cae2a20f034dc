import Testing
@testable import LedgerServer

/// Subscribers are woken less often as they grow in number, so that the socket writes of the
/// fan-out stay near ``SubscriptionHub/writesPerMillisecond`` per millisecond.
@Suite struct WakeIntervalTests {
    @Test func wakeUpsAreSpacedByTheNumberOfSubscribers() {
        #expect(SubscriptionHub.wakeInterval(subscribers: 1) == .milliseconds(2))
        #expect(SubscriptionHub.wakeInterval(subscribers: 40) == .milliseconds(2))
        #expect(SubscriptionHub.wakeInterval(subscribers: 100) == .milliseconds(5))
        #expect(SubscriptionHub.wakeInterval(subscribers: 10_000) == .milliseconds(20))
        // Between the floor and the ceiling, writes per millisecond stay at the aim.
        for n in stride(from: 40, through: 400, by: 20) {
            let ms = Double(SubscriptionHub.wakeInterval(subscribers: n).components.attoseconds) / 1e15
            #expect(Double(n) / ms <= Double(SubscriptionHub.writesPerMillisecond) + 1e-9)
        }
    }
}
