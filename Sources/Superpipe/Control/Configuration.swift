// Configuration from the environment and a configuration file: `IOConfiguration` and
// `RecoveryPolicy` with documented keys (Docs/configuration.md), next to the capiflash variables
// that mean the same thing (CFLSH_BLK_TIMEOUT, CFLSH_BLK_TIMEOUT_UNITS).
//
// Order, lowest first: the defaults, the file, capiflash's variables, Superpipe's variables. A
// value that does not parse or is out of range is a `ConfigurationError` naming the key; nothing
// is ever ignored. In the file an unknown key is an error as well (a misspelt key would otherwise
// be ignored); in the environment only the listed names are read (other SUPERPIPE_* variables
// belong to other components).
//
// Why not apple/swift-configuration: see Docs/configuration.md ("Why a reader of our own").

/// A configuration value that cannot be used: which key, which value, from where, and why.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
  /// What went wrong (an extensible set of codes).
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private let name: String
    private init(_ name: String) { self.name = name }
    /// The code's name (`invalidValue`, ...).
    public var description: String { name }

    /// The value does not parse as the key's type (not an integer, not a boolean, not one of
    /// the allowed words).
    public static let invalidValue = Code("invalidValue")
    /// The value parses but is outside the key's range.
    public static let outOfRange = Code("outOfRange")
    /// Two values contradict each other (an initial backoff above the maximum backoff).
    public static let inconsistent = Code("inconsistent")
    /// The file names a key that does not exist.
    public static let unknownKey = Code("unknownKey")
    /// The file gives the key a value of the wrong JSON type (a string for a number, ...).
    public static let wrongType = Code("wrongType")
    /// The file cannot be read (its errno is in the message).
    public static let unreadableFile = Code("unreadableFile")
    /// The file is not valid JSON, or its top level is not an object.
    public static let malformedFile = Code("malformedFile")
  }

  /// What went wrong.
  public var code: Code
  /// The key: an environment variable name (`SUPERPIPE_QUEUE_DEPTH`) or a file key
  /// (`io.queueDepth`); nil for a whole-file error.
  public var key: String?
  /// The offending value as written, when there is one.
  public var value: String?
  /// Where the value came from: `environment`, or the file's path.
  public var source: String
  /// A sentence a person can act on.
  public var message: String

  /// Creates the value from its parts.
  ///
  /// - Parameters:
  ///   - code: What went wrong.
  ///   - key: The environment variable or file key, nil for a whole-file error.
  ///   - value: The offending value as written, if any.
  ///   - source: `environment`, or the file's path.
  ///   - message: A sentence a person can act on.
  public init(code: Code, key: String?, value: String?, source: String, message: String) {
    self.code = code
    self.key = key
    self.value = value
    self.source = source
    self.message = message
  }

  /// `SUPERPIPE_QUEUE_DEPTH=abc (environment): not an integer`.
  public var description: String {
    var text = key ?? source
    if let value { text += "=\(value)" }
    if key != nil { text += " (\(source))" }
    return text + ": " + message
  }
}

/// One configuration key, as Docs/configuration.md lists it.
public struct ConfigurationKey: Sendable, Hashable, CustomStringConvertible {
  /// The environment variable (`SUPERPIPE_QUEUE_DEPTH`).
  public let environmentName: String
  /// The key in the configuration file (`io.queueDepth`): section, dot, name.
  public let fileKey: String
  /// What the value may be: `1...4096`, `polling|interrupts`, `boolean`, `integer ≥ 0 (ms)`.
  public let accepts: String

  /// `SUPERPIPE_QUEUE_DEPTH / io.queueDepth (1...4096)`.
  public var description: String { "\(environmentName) / \(fileKey) (\(accepts))" }
}

/// The settings the library reads from the environment or a configuration file: the data path
/// (`IOConfiguration`) and the recovery policy (`RecoveryPolicy`). Apply them to a context with
/// `Context.apply(_:)`.
public struct SuperpipeConfiguration: Sendable, Hashable {
  /// The data-path settings.
  public var io: IOConfiguration
  /// The recovery policy.
  public var recovery: RecoveryPolicy

  /// The given settings (the defaults when omitted).
  ///
  /// - Parameters:
  ///   - io: The data-path settings.
  ///   - recovery: The recovery policy.
  public init(io: IOConfiguration = IOConfiguration(), recovery: RecoveryPolicy = RecoveryPolicy()) {
    self.io = io
    self.recovery = recovery
  }

  /// The environment variable that names a configuration file for `load()`.
  public static let fileVariable = "SUPERPIPE_CONFIG_FILE"

  /// The defaults, then the configuration file, then the environment: the file at `file`, or,
  /// when `file` is nil, the one `SUPERPIPE_CONFIG_FILE` names (none when it is unset).
  ///
  /// - Parameters:
  ///   - file: The JSON configuration file (nil: the one `SUPERPIPE_CONFIG_FILE` names, if any).
  ///   - environment: The variables to read (the process environment by default).
  /// - Throws: `ConfigurationError` naming the first key whose value cannot be used; a file that
  ///   cannot be read or parsed.
  public static func load(
    file: String? = nil, environment: [String: String] = SuperpipeConfiguration.processEnvironment
  ) throws(ConfigurationError) -> SuperpipeConfiguration {
    var configuration = SuperpipeConfiguration()
    if let path = file ?? environment[fileVariable].flatMap({ $0.isEmpty ? nil : $0 }) {
      try configuration.apply(file: path)
    }
    try configuration.apply(environment: environment)
    return configuration
  }

  /// The defaults overridden by the environment (no file).
  ///
  /// - Parameter environment: The variables to read (`processEnvironment` for the process's own).
  /// - Throws: `ConfigurationError` naming the first variable whose value cannot be used.
  public init(environment: [String: String]) throws(ConfigurationError) {
    self.init()
    try apply(environment: environment)
  }

  /// The process environment as it is now (the default of every `environment:` parameter).
  public static var processEnvironment: [String: String] { Syscall.environment() }

  /// Overrides these settings with the variables in `environment` that name a key: capiflash's
  /// `CFLSH_BLK_TIMEOUT` first, then Superpipe's own (`SUPERPIPE_COMMAND_TIMEOUT_MS` wins over
  /// `CFLSH_BLK_TIMEOUT` when both are set).
  /// On an error nothing is changed.
  ///
  /// - Parameter environment: The variables to read.
  /// - Throws: `ConfigurationError` naming the first variable whose value cannot be used.
  public mutating func apply(environment: [String: String]) throws(ConfigurationError) {
    var result = self
    try result.applyCapiflashTimeout(environment)
    for key in Self.definitions {
      guard let text = environment[key.environmentName] else { continue }
      let value = try key.parse(text: text, name: key.environmentName, source: "environment")
      key.assign(&result, value)
    }
    try result.checkConsistency(source: "environment", names: \.environmentName)
    self = result
  }

  /// Overrides these settings with the JSON configuration file at `path`. On an error nothing is
  /// changed.
  ///
  /// - Parameter path: The file (Docs/configuration.md describes its format).
  /// - Throws: `ConfigurationError`: `.unreadableFile`, `.malformedFile`, or one naming a key.
  public mutating func apply(file path: String) throws(ConfigurationError) {
    let bytes: [UInt8]
    switch Syscall.readFile(path) {
    case .success(let contents): bytes = contents
    case .failure(let errno):
      throw ConfigurationError(
        code: .unreadableFile, key: nil, value: nil, source: path,
        message: "cannot read the configuration file (\(SuperpipeError.errnoName(errno.rawValue)))")
    }
    try apply(json: bytes, source: path)
  }

  /// Overrides these settings with a JSON document (the configuration file's contents). On an
  /// error nothing is changed.
  ///
  /// - Parameters:
  ///   - bytes: The document, UTF-8.
  ///   - source: What to call the document in errors (a path).
  /// - Throws: `ConfigurationError`: `.malformedFile`, or one naming a key.
  public mutating func apply(json bytes: [UInt8], source: String = "configuration") throws(ConfigurationError) {
    var result = self
    try result.applyDocument(bytes, source: source)
    self = result
  }

  private mutating func applyDocument(_ bytes: [UInt8], source: String) throws(ConfigurationError) {
    let document: JSONValue
    do {
      document = try JSONParser.parse(bytes)
    } catch {
      throw ConfigurationError(
        code: .malformedFile, key: nil, value: nil, source: source,
        message: "not valid JSON at line \(error.line), column \(error.column): \(error.message)")
    }
    guard case .object(let sections) = document else {
      throw ConfigurationError(
        code: .malformedFile, key: nil, value: nil, source: source,
        message: "the top level must be an object with \"io\" and \"recovery\" sections, not \(document.kindName)")
    }
    for (section, content) in sections {
      guard Self.sections.contains(section) else {
        throw ConfigurationError(
          code: .unknownKey, key: section, value: nil, source: source,
          message: "no such section; the sections are \(Self.sections.map { "\"\($0)\"" }.joined(separator: " and "))")
      }
      guard case .object(let members) = content else {
        throw ConfigurationError(
          code: .wrongType, key: section, value: nil, source: source,
          message: "a section must be an object, not \(content.kindName)")
      }
      for (name, value) in members {
        let fileKey = "\(section).\(name)"
        guard let key = Self.definitions.first(where: { $0.fileKey == fileKey }) else {
          let known = Self.definitions.filter { $0.fileKey.hasPrefix(section + ".") }.map { $0.fileKey }
          throw ConfigurationError(
            code: .unknownKey, key: fileKey, value: nil, source: source,
            message: "no such key; the keys of \"\(section)\" are \(known.joined(separator: ", "))")
        }
        key.assign(&self, try key.parse(json: value, source: source))
      }
    }
    try checkConsistency(source: source, names: \.fileKey)
  }

  /// Every key, in the order of Docs/configuration.md.
  public static var keys: [ConfigurationKey] {
    definitions.map {
      ConfigurationKey(environmentName: $0.environmentName, fileKey: $0.fileKey, accepts: $0.kind.accepts)
    }
  }

  /// capiflash's variables: `CFLSH_BLK_TIMEOUT` sets the command timeout, in the unit
  /// `CFLSH_BLK_TIMEOUT_UNITS` names (`MILLI`, `MICRO`; seconds when unset).
  public static let capiflashTimeout = ConfigurationKey(
    environmentName: "CFLSH_BLK_TIMEOUT", fileKey: "io.commandTimeoutMs", accepts: "integer ≥ 1 (seconds)")
  /// The unit of `CFLSH_BLK_TIMEOUT`.
  public static let capiflashTimeoutUnits = ConfigurationKey(
    environmentName: "CFLSH_BLK_TIMEOUT_UNITS", fileKey: "io.commandTimeoutMs",
    accepts: "MILLI|MICRO (seconds when unset)")

  private mutating func applyCapiflashTimeout(_ environment: [String: String]) throws(ConfigurationError) {
    let units = environment[Self.capiflashTimeoutUnits.environmentName]
    let unit: (Int64) -> Duration
    switch units?.uppercased() {
    case nil, "": unit = { .seconds($0) }
    case "MILLI": unit = { .milliseconds($0) }
    case "MICRO": unit = { .microseconds($0) }
    default:
      throw ConfigurationError(
        code: .invalidValue, key: Self.capiflashTimeoutUnits.environmentName, value: units, source: "environment",
        message: "must be MILLI or MICRO (unset: seconds)")
    }
    guard let text = environment[Self.capiflashTimeout.environmentName] else { return }
    let kind = Definition.Kind.integer(1...Int64.max, unit: "")
    guard
      case .integer(let amount) = try kind.parse(
        text: text, name: Self.capiflashTimeout.environmentName, source: "environment")
    else { return }
    io.commandTimeout = unit(amount)
  }

  private func checkConsistency(source: String, names: KeyPath<Definition, String>) throws(ConfigurationError) {
    if recovery.initialBackoff > recovery.maximumBackoff {
      let initial = Self.definitions.first { $0.fileKey == "recovery.initialBackoffMs" }!
      let maximum = Self.definitions.first { $0.fileKey == "recovery.maxBackoffMs" }!
      throw ConfigurationError(
        code: .inconsistent, key: initial[keyPath: names], value: "\(recovery.initialBackoff.milliseconds)",
        source: source,
        message: "the initial backoff is above \(maximum[keyPath: names]) (\(recovery.maximumBackoff.milliseconds) ms)")
    }
  }

  static let sections = ["io", "recovery"]

  /// A key: its names, what it accepts, and the field it sets.
  struct Definition: Sendable {
    enum Kind: Sendable {
      case integer(ClosedRange<Int64>, unit: String)
      case boolean
      case choice([String])

      var accepts: String {
        switch self {
        case .integer(let range, let unit):
          // Upper bounds that only keep a Duration from overflowing are not worth stating.
          let bounds =
            range.upperBound >= Self.overflowBound
            ? "integer ≥ \(range.lowerBound)" : "\(range.lowerBound)...\(range.upperBound)"
          return unit.isEmpty ? bounds : "\(bounds) (\(unit))"
        case .boolean: return "boolean"
        case .choice(let words): return words.joined(separator: "|")
        }
      }

      /// Parses an environment variable's text.
      func parse(text: String, name: String, source: String) throws(ConfigurationError) -> Parsed {
        switch self {
        case .integer:
          guard let value = Int64(text.trimmingSpaces) else {
            throw ConfigurationError(
              code: .invalidValue, key: name, value: text, source: source, message: "not an integer")
          }
          return try check(value, text: text, name: name, source: source)
        case .boolean:
          switch text.trimmingSpaces.lowercased() {
          case "1", "true", "yes", "on": return .boolean(true)
          case "0", "false", "no", "off": return .boolean(false)
          default:
            throw ConfigurationError(
              code: .invalidValue, key: name, value: text, source: source,
              message: "not a boolean (1, true, yes, on / 0, false, no, off)")
          }
        case .choice(let words):
          let word = text.trimmingSpaces.lowercased()
          guard words.contains(word) else {
            throw ConfigurationError(
              code: .invalidValue, key: name, value: text, source: source,
              message: "must be one of \(words.joined(separator: ", "))")
          }
          return .choice(word)
        }
      }

      /// Checks a JSON value's type, then parses it as the environment's text would be.
      func parse(json: JSONValue, name: String, source: String) throws(ConfigurationError) -> Parsed {
        switch (self, json) {
        case (.integer, .number(let literal)):
          guard let value = Int64(literal) else {
            throw ConfigurationError(
              code: .invalidValue, key: name, value: literal, source: source, message: "not an integer")
          }
          return try check(value, text: literal, name: name, source: source)
        case (.boolean, .boolean(let value)): return .boolean(value)
        case (.choice, .string(let text)): return try parse(text: text, name: name, source: source)
        default:
          let expected =
            switch self {
            case .integer: "a number"
            case .boolean: "true or false"
            case .choice: "a string"
            }
          throw ConfigurationError(
            code: .wrongType, key: name, value: nil, source: source,
            message: "must be \(expected), not \(json.kindName)")
        }
      }

      /// The smallest upper bound `accepts` leaves out (Int64.max / 10^6: milliseconds as nanoseconds).
      static let overflowBound = Int64.max / 1_000_000

      private func check(_ value: Int64, text: String, name: String, source: String) throws(ConfigurationError)
        -> Parsed
      {
        guard case .integer(let range, _) = self, range.contains(value) else {
          var message = "must be \(accepts)"
          if case .integer(let range, _) = self, value > range.upperBound, range.upperBound >= Self.overflowBound {
            message += " and at most \(range.upperBound)"
          }
          throw ConfigurationError(code: .outOfRange, key: name, value: text, source: source, message: message)
        }
        return .integer(value)
      }
    }

    enum Parsed: Sendable {
      case integer(Int64)
      case boolean(Bool)
      case choice(String)

      var integer: Int64 {
        if case .integer(let value) = self { return value }
        preconditionFailure("not an integer")
      }
      var boolean: Bool {
        if case .boolean(let value) = self { return value }
        preconditionFailure("not a boolean")
      }
      var word: String {
        if case .choice(let value) = self { return value }
        preconditionFailure("not a word")
      }
    }

    let environmentName: String
    let fileKey: String
    let kind: Kind
    let assign: @Sendable (inout SuperpipeConfiguration, Parsed) -> Void

    func parse(text: String, name: String, source: String) throws(ConfigurationError) -> Parsed {
      try kind.parse(text: text, name: name, source: source)
    }

    func parse(json: JSONValue, source: String) throws(ConfigurationError) -> Parsed {
      try kind.parse(json: json, name: fileKey, source: source)
    }
  }

  /// The keys (Docs/configuration.md has the same table).
  static let definitions: [Definition] = [
    .integer("SUPERPIPE_QUEUE_DEPTH", "io.queueDepth", 1...4096) { $0.io.queueDepth = $1 },
    Definition(
      environmentName: "SUPERPIPE_COMPLETION", fileKey: "io.completion",
      kind: .choice(CompletionMode.allCases.map(\.rawValue))
    ) { $0.io.completion = CompletionMode(rawValue: $1.word) ?? .polling },
    .duration("SUPERPIPE_COMMAND_TIMEOUT_MS", "io.commandTimeoutMs", minimum: 1) { $0.io.commandTimeout = $1 },
    .duration("SUPERPIPE_SPIN_TIME_US", "io.spinTimeUs", microseconds: true) { $0.io.spinTime = $1 },
    .boolean("SUPERPIPE_RECOVERY_AUTOMATIC", "recovery.automatic") { $0.recovery.automatic = $1 },
    .integer("SUPERPIPE_RECOVERY_MAX_ATTEMPTS", "recovery.maxAttempts", 1...1000) { $0.recovery.recoveryAttempts = $1 },
    .duration("SUPERPIPE_RECOVERY_INITIAL_BACKOFF_MS", "recovery.initialBackoffMs") { $0.recovery.initialBackoff = $1 },
    .duration("SUPERPIPE_RECOVERY_MAX_BACKOFF_MS", "recovery.maxBackoffMs") { $0.recovery.maximumBackoff = $1 },
    .integer("SUPERPIPE_RECOVERY_COMMAND_RETRIES", "recovery.commandRetries", 0...1000) {
      $0.recovery.commandRetries = $1
    },
    .duration("SUPERPIPE_RECOVERY_BUSY_DELAY_MS", "recovery.busyDelayMs") { $0.recovery.busyDelay = $1 },
    .boolean("SUPERPIPE_RECOVERY_VERIFY_ON_UNIT_ATTENTION", "recovery.verifyOnUnitAttention") {
      $0.recovery.verifyOnUnitAttention = $1
    },
    .duration("SUPERPIPE_RECOVERY_LINK_DOWN_TIMEOUT_MS", "recovery.linkDownTimeoutMs") {
      $0.recovery.linkDownTimeout = $1
    },
  ]
}

extension SuperpipeConfiguration.Definition {
  typealias Configuration = SuperpipeConfiguration

  /// An integer key within `range`.
  static func integer(
    _ name: String, _ fileKey: String, _ range: ClosedRange<Int64>,
    _ assign: @escaping @Sendable (inout Configuration, Int) -> Void
  ) -> Self {
    Self(environmentName: name, fileKey: fileKey, kind: .integer(range, unit: "")) { assign(&$0, Int($1.integer)) }
  }

  /// A duration key in whole milliseconds (or microseconds), at least `minimum`.
  static func duration(
    _ name: String, _ fileKey: String, minimum: Int64 = 0, microseconds: Bool = false,
    _ assign: @escaping @Sendable (inout Configuration, Duration) -> Void
  ) -> Self {
    let limit = microseconds ? Int64.max / 1_000 : Int64.max / 1_000_000
    return Self(
      environmentName: name, fileKey: fileKey, kind: .integer(minimum...limit, unit: microseconds ? "µs" : "ms")
    ) { assign(&$0, microseconds ? .microseconds($1.integer) : .milliseconds($1.integer)) }
  }

  /// A boolean key.
  static func boolean(
    _ name: String, _ fileKey: String, _ assign: @escaping @Sendable (inout Configuration, Bool) -> Void
  )
    -> Self
  {
    Self(environmentName: name, fileKey: fileKey, kind: .boolean) { assign(&$0, $1.boolean) }
  }
}

extension IOConfiguration {
  /// The defaults overridden by the environment's data-path keys (`SUPERPIPE_QUEUE_DEPTH`,
  /// `SUPERPIPE_COMPLETION`, `SUPERPIPE_COMMAND_TIMEOUT_MS`, `SUPERPIPE_SPIN_TIME_US`, and
  /// capiflash's `CFLSH_BLK_TIMEOUT` with `CFLSH_BLK_TIMEOUT_UNITS`). Pass
  /// `SuperpipeConfiguration.processEnvironment` for the process's own environment.
  ///
  /// - Parameter environment: The variables to read.
  /// - Throws: `ConfigurationError` naming the first variable whose value cannot be used (the
  ///   recovery keys are checked too: a bad one is an error here as well).
  public init(environment: [String: String]) throws(ConfigurationError) {
    self = try SuperpipeConfiguration(environment: environment).io
  }
}

extension RecoveryPolicy {
  /// The defaults overridden by the environment's recovery keys (`SUPERPIPE_RECOVERY_*`; pass
  /// `SuperpipeConfiguration.processEnvironment` for the process's own).
  ///
  /// - Parameter environment: The variables to read.
  /// - Throws: `ConfigurationError` naming the first variable whose value cannot be used (the
  ///   data-path keys are checked too: a bad one is an error here as well).
  public init(environment: [String: String]) throws(ConfigurationError) {
    self = try SuperpipeConfiguration(environment: environment).recovery
  }
}

extension Context {
  /// Applies a configuration: the data-path settings (`configureIO(_:)`: commands in flight are
  /// aborted with a context reset) and the recovery policy.
  ///
  /// - Parameter configuration: The settings, from `SuperpipeConfiguration.load()` or built in code.
  public func apply(_ configuration: SuperpipeConfiguration) {
    configureIO(configuration.io)
    recoveryPolicy = configuration.recovery
  }
}

extension Duration {
  /// Whole milliseconds (for messages).
  fileprivate var milliseconds: Int64 { nanoseconds / 1_000_000 }
}

extension String {
  /// Without leading and trailing spaces and tabs.
  fileprivate var trimmingSpaces: String {
    var text = Substring(self)
    while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
    while let last = text.last, last == " " || last == "\t" { text.removeLast() }
    return String(text)
  }
}
