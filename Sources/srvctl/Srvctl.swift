import ArgumentParser

@main
struct Srvctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "srvctl",
        abstract: "Command-line client for srvd.",
        discussion: "Registration commands (register, deregister, members, records, wait, verify) arrive with srvd's admin API."
    )

    func run() throws {
        print(Self.helpMessage())
    }
}
