import Foundation
import Superpipe
import SuperpipeMock
import Testing

/// `SuperpipeConfiguration`: every key from the environment and from the file, capiflash's
/// CFLSH_BLK_TIMEOUT, bad values as typed errors naming their key, and the order of the sources
/// (Docs/configuration.md).
@Suite("configuration from the environment and a file")
struct ConfigurationTests {
  /// One valid value per key, and what it must set.
  struct Sample: Sendable, CustomStringConvertible {
    var environmentName: String
    var text: String
    var json: String
    var check: @Sendable (SuperpipeConfiguration) -> Bool
    var description: String { environmentName }
  }

  static let samples: [Sample] = [
    Sample(environmentName: "SUPERPIPE_QUEUE_DEPTH", text: "64", json: "64") { $0.io.queueDepth == 64 },
    Sample(environmentName: "SUPERPIPE_COMPLETION", text: "interrupts", json: "\"interrupts\"") {
      $0.io.completion == .interrupts
    },
    Sample(environmentName: "SUPERPIPE_COMMAND_TIMEOUT_MS", text: "2500", json: "2500") {
      $0.io.commandTimeout == .milliseconds(2500)
    },
    Sample(environmentName: "SUPERPIPE_SPIN_TIME_US", text: "0", json: "0") { $0.io.spinTime == .zero },
    Sample(environmentName: "SUPERPIPE_RECOVERY_AUTOMATIC", text: "off", json: "false") { !$0.recovery.automatic },
    Sample(environmentName: "SUPERPIPE_RECOVERY_MAX_ATTEMPTS", text: "9", json: "9") {
      $0.recovery.recoveryAttempts == 9
    },
    Sample(environmentName: "SUPERPIPE_RECOVERY_INITIAL_BACKOFF_MS", text: "3", json: "3") {
      $0.recovery.initialBackoff == .milliseconds(3)
    },
    Sample(environmentName: "SUPERPIPE_RECOVERY_MAX_BACKOFF_MS", text: "4000", json: "4000") {
      $0.recovery.maximumBackoff == .milliseconds(4000)
    },
    Sample(environmentName: "SUPERPIPE_RECOVERY_COMMAND_RETRIES", text: "0", json: "0") {
      $0.recovery.commandRetries == 0
    },
    Sample(environmentName: "SUPERPIPE_RECOVERY_BUSY_DELAY_MS", text: "5000", json: "5000") {
      $0.recovery.busyDelay == .seconds(5)
    },
    Sample(environmentName: "SUPERPIPE_RECOVERY_VERIFY_ON_UNIT_ATTENTION", text: "no", json: "false") {
      !$0.recovery.verifyOnUnitAttention
    },
    Sample(environmentName: "SUPERPIPE_RECOVERY_LINK_DOWN_TIMEOUT_MS", text: "250", json: "250") {
      $0.recovery.linkDownTimeout == .milliseconds(250)
    },
  ]

  static func key(_ name: String) -> ConfigurationKey {
    SuperpipeConfiguration.keys.first { $0.environmentName == name }!
  }

  /// A JSON document setting one file key (`section.name`) to a JSON literal.
  static func document(_ fileKey: String, _ literal: String) -> [UInt8] {
    let parts = fileKey.split(separator: ".")
    return Array("{\"\(parts[0])\": {\"\(parts[1])\": \(literal)}}".utf8)
  }

  /// The `ConfigurationError` `body` throws (any other error is an issue).
  static func error(_ body: () throws -> Void) -> ConfigurationError? {
    do {
      try body()
      return nil
    } catch let error as ConfigurationError {
      return error
    } catch {
      Issue.record("not a ConfigurationError: \(error)")
      return nil
    }
  }

  @Test("every key has a sample here, a unique environment name and file key, and the defaults hold without any")
  func keysAreCovered() throws {
    let keys = SuperpipeConfiguration.keys
    #expect(Set(keys.map(\.environmentName)) == Set(Self.samples.map(\.environmentName)))
    #expect(Set(keys.map(\.environmentName)).count == keys.count)
    #expect(Set(keys.map(\.fileKey)).count == keys.count)
    #expect(keys.allSatisfy { $0.environmentName.hasPrefix("SUPERPIPE_") })
    #expect(try SuperpipeConfiguration(environment: [:]) == SuperpipeConfiguration())
    #expect(try SuperpipeConfiguration.load(environment: [:]) == SuperpipeConfiguration())
    // No sample value is a default: each one shows its key took effect.
    for sample in Self.samples { #expect(!sample.check(SuperpipeConfiguration()), "\(sample) sample is the default") }
  }

  @Test("each key from the environment sets its field and nothing else", arguments: samples)
  func environmentKey(sample: Sample) throws {
    let configuration = try SuperpipeConfiguration(environment: [sample.environmentName: sample.text, "UNRELATED": "x"])
    #expect(sample.check(configuration))
    for other in Self.samples where other.environmentName != sample.environmentName {
      #expect(!other.check(configuration), "\(sample) also changed \(other)")
    }
  }

  @Test("each key from the file sets its field", arguments: samples)
  func fileKey(sample: Sample) throws {
    var configuration = SuperpipeConfiguration()
    try configuration.apply(json: Self.document(Self.key(sample.environmentName).fileKey, sample.json))
    #expect(sample.check(configuration))
  }

  @Test("a value that does not parse is .invalidValue naming the variable; nothing is applied")
  func invalidEnvironmentValues() {
    let cases: [(String, String)] = [
      ("SUPERPIPE_QUEUE_DEPTH", "deep"), ("SUPERPIPE_QUEUE_DEPTH", "64k"), ("SUPERPIPE_QUEUE_DEPTH", ""),
      ("SUPERPIPE_COMPLETION", "sometimes"), ("SUPERPIPE_COMMAND_TIMEOUT_MS", "1.5"),
      ("SUPERPIPE_SPIN_TIME_US", "ten"), ("SUPERPIPE_RECOVERY_AUTOMATIC", "maybe"),
      ("SUPERPIPE_RECOVERY_MAX_ATTEMPTS", "0x5"), ("SUPERPIPE_RECOVERY_INITIAL_BACKOFF_MS", "10ms"),
      ("SUPERPIPE_RECOVERY_MAX_BACKOFF_MS", "1s"), ("SUPERPIPE_RECOVERY_COMMAND_RETRIES", "three"),
      ("SUPERPIPE_RECOVERY_BUSY_DELAY_MS", "-"), ("SUPERPIPE_RECOVERY_VERIFY_ON_UNIT_ATTENTION", "2"),
      ("SUPERPIPE_RECOVERY_LINK_DOWN_TIMEOUT_MS", "99999999999999999999999"),
    ]
    #expect(Set(cases.map(\.0)) == Set(SuperpipeConfiguration.keys.map(\.environmentName)), "a bad value for every key")
    for (name, text) in cases {
      let error = Self.error { _ = try SuperpipeConfiguration(environment: [name: text]) }
      #expect(error?.code == .invalidValue, "\(name)=\(text): \(String(describing: error))")
      #expect(error?.key == name)
      #expect(error?.value == text)
      #expect(error?.source == "environment")
      #expect(error?.description.hasPrefix("\(name)=\(text) (environment): ") == true, "\(String(describing: error))")
    }
  }

  @Test("a value outside its range is .outOfRange naming the variable and the range")
  func outOfRangeValues() {
    let cases: [(String, String, String)] = [
      ("SUPERPIPE_QUEUE_DEPTH", "0", "1...4096"), ("SUPERPIPE_QUEUE_DEPTH", "4097", "1...4096"),
      ("SUPERPIPE_COMMAND_TIMEOUT_MS", "0", "integer ≥ 1"), ("SUPERPIPE_SPIN_TIME_US", "-1", "integer ≥ 0"),
      ("SUPERPIPE_RECOVERY_MAX_ATTEMPTS", "0", "1...1000"), ("SUPERPIPE_RECOVERY_COMMAND_RETRIES", "1001", "0...1000"),
      ("SUPERPIPE_RECOVERY_LINK_DOWN_TIMEOUT_MS", "-5", "integer ≥ 0"),
    ]
    for (name, text, range) in cases {
      let error = Self.error { _ = try SuperpipeConfiguration(environment: [name: text]) }
      #expect(error?.code == .outOfRange, "\(name)=\(text)")
      #expect(error?.key == name)
      #expect(error?.message.contains(range) == true, "\(String(describing: error))")
    }
    // The bounds themselves are accepted.
    #expect((try? SuperpipeConfiguration(environment: ["SUPERPIPE_QUEUE_DEPTH": "4096"]))?.io.queueDepth == 4096)
    #expect((try? SuperpipeConfiguration(environment: ["SUPERPIPE_QUEUE_DEPTH": " 1 "]))?.io.queueDepth == 1)
  }

  @Test("booleans and words: the accepted spellings")
  func spellings() throws {
    for text in ["1", "true", "YES", "On"] {
      #expect(try SuperpipeConfiguration(environment: ["SUPERPIPE_RECOVERY_AUTOMATIC": text]).recovery.automatic)
    }
    for text in ["0", "False", "no", "OFF"] {
      #expect(try !SuperpipeConfiguration(environment: ["SUPERPIPE_RECOVERY_AUTOMATIC": text]).recovery.automatic)
    }
    #expect(try SuperpipeConfiguration(environment: ["SUPERPIPE_COMPLETION": "Polling"]).io.completion == .polling)
  }

  @Test("an initial backoff above the maximum is .inconsistent, whichever source set either")
  func inconsistentBackoff() {
    let environment = Self.error {
      _ = try SuperpipeConfiguration(environment: ["SUPERPIPE_RECOVERY_INITIAL_BACKOFF_MS": "2000"])
    }
    #expect(environment?.code == .inconsistent)
    #expect(environment?.key == "SUPERPIPE_RECOVERY_INITIAL_BACKOFF_MS")
    #expect(environment?.message.contains("SUPERPIPE_RECOVERY_MAX_BACKOFF_MS (1000 ms)") == true)
    var configuration = SuperpipeConfiguration()
    let file = Self.error {
      try configuration.apply(
        json: Array(#"{"recovery": {"initialBackoffMs": 50, "maxBackoffMs": 40}}"#.utf8), source: "f.json")
    }
    #expect(file?.code == .inconsistent)
    #expect(file?.key == "recovery.initialBackoffMs")
    #expect(file?.source == "f.json")
    // Raising both together is fine.
    #expect(
      (try? SuperpipeConfiguration(environment: [
        "SUPERPIPE_RECOVERY_INITIAL_BACKOFF_MS": "2000", "SUPERPIPE_RECOVERY_MAX_BACKOFF_MS": "8000",
      ]))?.recovery.initialBackoff == .seconds(2))
  }

  @Test("capiflash's CFLSH_BLK_TIMEOUT in seconds, MILLI or MICRO; SUPERPIPE_COMMAND_TIMEOUT_MS wins over it")
  func capiflashTimeout() throws {
    #expect(try IOConfiguration(environment: ["CFLSH_BLK_TIMEOUT": "7"]).commandTimeout == .seconds(7))
    #expect(
      try IOConfiguration(environment: ["CFLSH_BLK_TIMEOUT": "750", "CFLSH_BLK_TIMEOUT_UNITS": "MILLI"]).commandTimeout
        == .milliseconds(750))
    #expect(
      try IOConfiguration(environment: ["CFLSH_BLK_TIMEOUT": "900", "CFLSH_BLK_TIMEOUT_UNITS": "micro"]).commandTimeout
        == .microseconds(900))
    #expect(
      try IOConfiguration(environment: ["CFLSH_BLK_TIMEOUT": "7", "SUPERPIPE_COMMAND_TIMEOUT_MS": "1200"])
        .commandTimeout
        == .milliseconds(1200))
    let units = Self.error {
      _ = try IOConfiguration(environment: ["CFLSH_BLK_TIMEOUT": "7", "CFLSH_BLK_TIMEOUT_UNITS": "HOURS"])
    }
    #expect(units?.code == .invalidValue)
    #expect(units?.key == "CFLSH_BLK_TIMEOUT_UNITS")
    let zero = Self.error { _ = try IOConfiguration(environment: ["CFLSH_BLK_TIMEOUT": "0"]) }
    #expect(zero?.code == .outOfRange)
    #expect(zero?.key == "CFLSH_BLK_TIMEOUT")
    let text = Self.error { _ = try IOConfiguration(environment: ["CFLSH_BLK_TIMEOUT": "soon"]) }
    #expect(text?.code == .invalidValue)
    #expect(text?.key == "CFLSH_BLK_TIMEOUT")
  }

  @Test("IOConfiguration(environment:) and RecoveryPolicy(environment:) read their own keys")
  func perTypeInitializers() throws {
    let environment = ["SUPERPIPE_QUEUE_DEPTH": "8", "SUPERPIPE_RECOVERY_COMMAND_RETRIES": "7"]
    #expect(try IOConfiguration(environment: environment) == IOConfiguration(queueDepth: 8))
    #expect(try RecoveryPolicy(environment: environment) == RecoveryPolicy(commandRetries: 7))
    // A bad recovery key is an error for IOConfiguration(environment:) too: never ignored.
    #expect(throws: ConfigurationError.self) {
      try IOConfiguration(environment: ["SUPERPIPE_RECOVERY_AUTOMATIC": "perhaps"])
    }
  }

  @Test("file errors: unknown section or key, wrong JSON type, malformed JSON with its position, not an object")
  func fileErrors() {
    func failure(_ text: String) -> ConfigurationError? {
      var configuration = SuperpipeConfiguration()
      let error = Self.error { try configuration.apply(json: Array(text.utf8), source: "test.json") }
      #expect(configuration == SuperpipeConfiguration() || error == nil)
      return error
    }
    let section = failure(#"{"datapath": {}}"#)
    #expect(section?.code == .unknownKey)
    #expect(section?.key == "datapath")
    let key = failure(#"{"io": {"queueDepht": 4}}"#)
    #expect(key?.code == .unknownKey)
    #expect(key?.key == "io.queueDepht")
    #expect(key?.message.contains("io.queueDepth") == true, "lists the known keys")
    let string = failure(#"{"io": {"queueDepth": "64"}}"#)
    #expect(string?.code == .wrongType)
    #expect(string?.key == "io.queueDepth")
    #expect(failure(#"{"recovery": {"automatic": 1}}"#)?.code == .wrongType)
    #expect(failure(#"{"io": {"completion": true}}"#)?.code == .wrongType)
    #expect(failure(#"{"io": 5}"#)?.code == .wrongType)
    let fraction = failure(#"{"io": {"queueDepth": 6.5}}"#)
    #expect(fraction?.code == .invalidValue)
    #expect(fraction?.value == "6.5")
    #expect(failure(#"{"io": {"queueDepth": 0}}"#)?.code == .outOfRange)
    #expect(failure(#"{"io": {"completion": "spin"}}"#)?.code == .invalidValue)
    let malformed = failure("{\n  \"io\": {\"queueDepth\": 4,}\n}")
    #expect(malformed?.code == .malformedFile)
    #expect(malformed?.key == nil)
    #expect(malformed?.message.contains("line 2") == true, "\(String(describing: malformed))")
    #expect(failure("[1, 2]")?.code == .malformedFile)
    #expect(failure("")?.code == .malformedFile)
    #expect(failure(#"{"io": {}, "io": {}}"#)?.code == .malformedFile, "a key given twice")
    #expect(failure(#"{"io": {"queueDepth": 4}} x"#)?.code == .malformedFile)
    #expect(failure(#"{"io": {}, "recovery": {}}"#) == nil, "empty sections are fine")
    #expect(failure(" {\"io\" : {\"completion\" : \"interrupts\"} } \n") == nil)
  }

  @Test("the JSON reader: strings with escapes, nesting, numbers")
  func jsonStrings() throws {
    var configuration = SuperpipeConfiguration()
    // \u escapes in a key and a value.
    try configuration.apply(json: Array(#"{"io": {"compl\u0065tion": "\u0069nterrupts"}}"#.utf8))
    #expect(configuration.io.completion == .interrupts)
    // A document that fails changes nothing, not even the keys before the bad one.
    let text = #"{"io": {"completion": "polling", "queueDepth": 1e0}}"#
    let error = Self.error { try configuration.apply(json: Array(text.utf8)) }
    #expect(error?.code == .invalidValue, "1e0 is not an integer")
    #expect(error?.key == "io.queueDepth")
    #expect(configuration.io.completion == .interrupts)
    #expect(
      Self.error { try configuration.apply(json: Array(#"{"io": {"completion": "a\qb"}}"#.utf8)) }?.code
        == .malformedFile)
    #expect(
      Self.error { try configuration.apply(json: Array("{\"io\": {\"completion\": \"a\nb\"}}".utf8)) }?.code
        == .malformedFile)
    #expect(Self.error { try configuration.apply(json: Array(#"{"io": [1, {"a": null}]}"#.utf8)) }?.code == .wrongType)
  }

  @Test("sources in order: defaults, file, environment; SUPERPIPE_CONFIG_FILE names the file")
  func precedence() throws {
    let directory = try TestSupport.temporaryDirectory("configuration")
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("superpipe.json")
    try #"""
    {
      "io": {"queueDepth": 128, "completion": "interrupts", "commandTimeoutMs": 9000},
      "recovery": {"maxAttempts": 2, "busyDelayMs": 5000}
    }
    """#.write(to: file, atomically: true, encoding: .utf8)
    let fromFile = try SuperpipeConfiguration.load(file: file.path, environment: [:])
    #expect(fromFile.io == IOConfiguration(queueDepth: 128, completion: .interrupts, commandTimeout: .seconds(9)))
    #expect(fromFile.recovery == RecoveryPolicy(recoveryAttempts: 2, busyDelay: .seconds(5)))
    // The environment overrides the file key by key; CFLSH_BLK_TIMEOUT overrides the file too.
    let both = try SuperpipeConfiguration.load(
      file: file.path, environment: ["SUPERPIPE_QUEUE_DEPTH": "16", "CFLSH_BLK_TIMEOUT": "3"])
    #expect(both.io == IOConfiguration(queueDepth: 16, completion: .interrupts, commandTimeout: .seconds(3)))
    #expect(both.recovery.recoveryAttempts == 2)
    // SUPERPIPE_CONFIG_FILE names the file when none is given; an explicit file wins over it.
    let named = try SuperpipeConfiguration.load(environment: ["SUPERPIPE_CONFIG_FILE": file.path])
    #expect(named == fromFile)
    let other = directory.appendingPathComponent("other.json")
    try #"{"io": {"queueDepth": 2}}"#.write(to: other, atomically: true, encoding: .utf8)
    #expect(
      try SuperpipeConfiguration.load(file: other.path, environment: ["SUPERPIPE_CONFIG_FILE": file.path]).io.queueDepth
        == 2)
    #expect(try SuperpipeConfiguration.load(environment: ["SUPERPIPE_CONFIG_FILE": ""]) == SuperpipeConfiguration())
    // A file that cannot be read names itself and its errno.
    let missing = Self.error {
      _ = try SuperpipeConfiguration.load(environment: ["SUPERPIPE_CONFIG_FILE": directory.path + "/none.json"])
    }
    #expect(missing?.code == .unreadableFile)
    #expect(missing?.source == directory.path + "/none.json")
    #expect(missing?.message.contains("ENOENT") == true)
    // A bad value in the environment is reported even when the file is fine.
    let bad = Self.error {
      _ = try SuperpipeConfiguration.load(file: file.path, environment: ["SUPERPIPE_COMPLETION": "x"])
    }
    #expect(bad?.key == "SUPERPIPE_COMPLETION")
  }

  @Test("the process environment is what SuperpipeConfiguration.processEnvironment reads")
  func processEnvironment() {
    let environment = SuperpipeConfiguration.processEnvironment
    #expect(environment["PATH"] != nil)
    #expect(environment["PATH"] == ProcessInfo.processInfo.environment["PATH"])
    #expect(environment["HOME"] == ProcessInfo.processInfo.environment["HOME"])
  }

  @Test("Context.apply sets the data path and the recovery policy")
  func applyToContext() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      let configuration = try SuperpipeConfiguration(environment: [
        "SUPERPIPE_QUEUE_DEPTH": "4", "SUPERPIPE_SPIN_TIME_US": "10", "SUPERPIPE_RECOVERY_COMMAND_RETRIES": "1",
      ])
      context.apply(configuration)
      #expect(context.ioConfiguration == configuration.io)
      #expect(context.recoveryPolicy == configuration.recovery)
      try context.withPhysicalLUN { lun in
        let buffer = AlignedBuffer(count: 4096)
        try lun.read(at: 0, into: buffer.bytes)
      }
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("Docs/configuration.md lists every key with both of its names")
  func documented() throws {
    let page = try String(
      contentsOf: TestSupport.packageRoot.appendingPathComponent("Docs/configuration.md"), encoding: .utf8)
    for key in SuperpipeConfiguration.keys + [
      SuperpipeConfiguration.capiflashTimeout, SuperpipeConfiguration.capiflashTimeoutUnits,
    ] {
      #expect(page.contains("`\(key.environmentName)`"), "\(key.environmentName) missing")
      #expect(page.contains("`\(key.fileKey)`"), "\(key.fileKey) missing")
    }
    #expect(page.contains("`\(SuperpipeConfiguration.fileVariable)`"))
  }
}
