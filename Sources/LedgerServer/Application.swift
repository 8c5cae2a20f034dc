public import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import LedgerCore
public import Logging
import NIOCore
import NIOSSL
public import ServiceLifecycle
import UnixSignals

/// The HTTP application: the router on Hummingbird's HTTP/1.1 server (HTTPS with a certificate
/// and key), listening where the configuration says. `services` run in the application's group
/// beside the server; the tests call this too (`app.test(.live)`).
public func buildApplication(
    _ api: LedgerAPI, services: [any Service] = [], onListening: @escaping @Sendable (Int) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
    let configuration = api.configuration
    guard configuration.tokensPath != nil || configuration.isLoopback else {
        throw LedgerError(.usage, "without --tokens the server is open to anyone who can reach it: it listens on loopback only (127.0.0.1 or ::1), not \(configuration.host)")
    }
    let server: HTTPServerBuilder
    switch (configuration.tlsCertificatePath, configuration.tlsKeyPath) {
    case (let cert?, let key?):
        let chain: [NIOSSLCertificate]
        let privateKey: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(cert)
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw LedgerError(.usage, "--tls-cert \(cert) / --tls-key \(key): \(error)")
        }
        let tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        server = try .tls(.http1(), tlsConfiguration: tls)
    case (nil, nil):
        server = .http1()
    default:
        throw LedgerError(.usage, "--tls-cert and --tls-key go together")
    }
    return Application(
        router: buildRouter(api),
        server: server,
        configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "platform-ledger", backlog: 1024),
        services: services,
        onServerRunning: { channel in await onListening(channel.localAddress?.port ?? configuration.port) },
        logger: configuration.logger)
}

/// Reloads the tokens file on SIGHUP (a file that does not parse leaves the tokens in force).
public struct TokenReloadService: Service {
    let tokens: TokenStore
    let logger: Logger

    public init(tokens: TokenStore, logger: Logger) {
        self.tokens = tokens
        self.logger = logger
    }

    public func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                let n = try tokens.reload()
                logger.notice("tokens reloaded from \(tokens.path): \(n) tokens")
            } catch {
                logger.error("tokens file \(tokens.path) not reloaded, the previous tokens stay in force: \(error)")
            }
        }
    }
}
