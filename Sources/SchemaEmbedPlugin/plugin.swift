import Foundation
import PackagePlugin

/// Embeds the package's top-level `Schemas/` folder into the target that uses this plugin.
///
/// `Schemas/` is the public contract and stays the single source of truth: every `.json` file
/// below it is an input of the build command, so adding or editing a schema rebuilds the
/// embedding. SwiftPM resources cannot live outside a target's folder (and a symlinked resource
/// folder is copied as a dangling link), hence a generated source instead of `resources:`.
@main
struct SchemaEmbedPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let schemas = context.package.directoryURL.appending(path: "Schemas")
        var files: [URL] = []
        if let walker = FileManager.default.enumerator(at: schemas, includingPropertiesForKeys: nil) {
            for case let url as URL in walker where url.pathExtension == "json" || url.pathExtension == "yaml" {
                files.append(url)
            }
        }
        files.sort { $0.path < $1.path }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedSchemas.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) schema files from Schemas/",
                executable: try context.tool(named: "schema-embed").url,
                arguments: [schemas.path, output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output]
            )
        ]
    }
}
