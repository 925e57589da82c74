import Foundation
import PackagePlugin

/// Compiles the files a target lists in `embeddedFiles` below into a Swift source file, so
/// they travel inside the binary (srvd serves its OpenAPI document from any install).
@main
struct EmbedFiles: BuildToolPlugin {
    /// Files to embed, relative to each target's folder (they are excluded from the target).
    static let embeddedFiles = ["SrvdAdmin": ["openapi.yaml"]]

    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget, let files = Self.embeddedFiles[target.name] else { return [] }
        let inputs = files.map { target.directoryURL.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedFiles.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.joined(separator: ", ")) in \(target.name)",
                executable: try context.tool(named: "embed-files").url,
                arguments: [output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}
