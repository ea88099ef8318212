import Foundation
import Testing

/// A JSON value as the documents hold it: a number keeps whether it was written as an integer.
indirect enum JSONValue: Decodable, Equatable, CustomStringConvertible {
  case null
  case bool(Bool)
  case integer(Int128)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  init(from decoder: any Decoder) throws {
    if var array = try? decoder.unkeyedContainer() {
      var values: [JSONValue] = []
      while !array.isAtEnd { values.append(try array.decode(JSONValue.self)) }
      self = .array(values)
      return
    }
    if let object = try? decoder.container(keyedBy: AnyKey.self) {
      var values: [String: JSONValue] = [:]
      for key in object.allKeys { values[key.stringValue] = try object.decode(JSONValue.self, forKey: key) }
      self = .object(values)
      return
    }
    let value = try decoder.singleValueContainer()
    if value.decodeNil() {
      self = .null
    } else if let bool = try? value.decode(Bool.self) {
      self = .bool(bool)
    } else if let integer = try? value.decode(Int64.self) {
      self = .integer(Int128(integer))
    } else if let integer = try? value.decode(UInt64.self) {
      self = .integer(Int128(integer))
    } else if let number = try? value.decode(Double.self) {
      self = .number(number)
    } else {
      self = .string(try value.decode(String.self))
    }
  }

  /// Parses one JSON document.
  static func parse(_ text: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
  }

  /// The JSON Schema type names this value has ("integer" values are also "number"s).
  var types: Set<String> {
    switch self {
    case .null: ["null"]
    case .bool: ["boolean"]
    case .integer: ["integer", "number"]
    case .number(let value): value.rounded() == value ? ["integer", "number"] : ["number"]
    case .string: ["string"]
    case .array: ["array"]
    case .object: ["object"]
    }
  }

  subscript(key: String) -> JSONValue? {
    if case .object(let object) = self { object[key] } else { nil }
  }

  var string: String? {
    if case .string(let value) = self { value } else { nil }
  }

  var description: String {
    switch self {
    case .null: "null"
    case .bool(let value): "\(value)"
    case .integer(let value): "\(value)"
    case .number(let value): "\(value)"
    case .string(let value): "\"\(value)\""
    case .array(let values): "[\(values.map(\.description).joined(separator: ", "))]"
    case .object(let values): "{\(values.keys.sorted().map { "\"\($0)\": \(values[$0]!)" }.joined(separator: ", "))}"
    }
  }

  private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }
}

/// A validator for the subset of JSON Schema (draft 2020-12) that Docs/schemas uses: `type`,
/// `required`, `properties`, `additionalProperties` (false or a schema), `items`, `enum`, `const`,
/// and `$ref` to `$defs` in the same file or in another file of the directory. Annotations
/// (`$schema`, `$id`, `title`, `description`, `$comment`) are ignored; any other keyword makes
/// validation fail, so that a schema cannot rely on a rule this validator would silently skip.
struct JSONSchemaValidator {
  /// Docs/schemas.
  static let directory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Docs/schemas")

  static let annotations: Set<String> = ["$schema", "$id", "title", "description", "$comment", "$defs"]
  static let keywords: Set<String> = [
    "type", "required", "properties", "additionalProperties", "items", "enum", "const", "$ref",
  ]

  /// Schemas by file name: loaded from Docs/schemas on first use (tests may add their own).
  var files: [String: JSONValue] = [:]

  /// Loads a schema file of Docs/schemas.
  mutating func schema(_ file: String) throws -> JSONValue {
    if let loaded = files[file] { return loaded }
    let text = try String(contentsOf: Self.directory.appendingPathComponent(file), encoding: .utf8)
    let schema = try JSONValue.parse(text)
    files[file] = schema
    return schema
  }

  /// The problems of `document` against the schema file `file`; empty when it conforms.
  mutating func validate(_ document: JSONValue, against file: String) throws -> [String] {
    let root = try schema(file)
    var problems: [String] = []
    try check(document, root, file: file, path: "", problems: &problems)
    return problems
  }

  private mutating func resolve(_ reference: String, from file: String) throws -> (JSONValue, String) {
    let parts = reference.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
    let target = parts[0].isEmpty ? file : String(parts[0])
    var node = try schema(target)
    let pointer = parts.count > 1 ? parts[1] : ""
    for component in pointer.split(separator: "/") {
      guard let next = node[String(component)] else { throw SchemaError("unresolvable $ref \(reference) in \(file)") }
      node = next
    }
    return (node, target)
  }

  private mutating func check(_ value: JSONValue, _ schema: JSONValue, file: String, path: String, problems: inout [String])
    throws
  {
    if case .bool(let allowed) = schema {
      if !allowed { problems.append("\(path.isEmpty ? "/" : path): not allowed") }
      return
    }
    guard case .object(let rules) = schema else { throw SchemaError("\(file): a schema must be an object or a boolean") }
    for keyword in rules.keys where !Self.keywords.contains(keyword) && !Self.annotations.contains(keyword) {
      throw SchemaError("\(file): unsupported keyword \(keyword) at \(path.isEmpty ? "/" : path)")
    }
    let at = path.isEmpty ? "/" : path
    if let reference = rules["$ref"]?.string {
      let (target, targetFile) = try resolve(reference, from: file)
      try check(value, target, file: targetFile, path: path, problems: &problems)
    }
    if let type = rules["type"] {
      let allowed: [String] =
        switch type {
        case .string(let name): [name]
        case .array(let names): names.compactMap(\.string)
        default: throw SchemaError("\(file): bad type at \(at)")
        }
      guard !value.types.isDisjoint(with: allowed) else {
        problems.append("\(at): \(value) is not of type \(allowed.joined(separator: "|"))")
        return
      }
    }
    if let constant = rules["const"], constant != value { problems.append("\(at): \(value) is not \(constant)") }
    if case .array(let options) = rules["enum"], !options.contains(value) {
      problems.append("\(at): \(value) is not one of \(options)")
    }
    if case .object(let object) = value {
      if case .array(let required) = rules["required"] {
        for name in required.compactMap(\.string) where object[name] == nil {
          problems.append("\(at): required property \(name) is missing")
        }
      }
      let properties: [String: JSONValue] =
        if case .object(let properties) = rules["properties"] { properties } else { [:] }
      for (name, member) in object.sorted(by: { $0.key < $1.key }) {
        if let property = properties[name] {
          try check(member, property, file: file, path: path + "/" + name, problems: &problems)
        } else if let additional = rules["additionalProperties"] {
          if case .bool(false) = additional {
            problems.append("\(at): property \(name) is not in the schema")
          } else {
            try check(member, additional, file: file, path: path + "/" + name, problems: &problems)
          }
        }
      }
    }
    if case .array(let elements) = value, let items = rules["items"] {
      for (index, element) in elements.enumerated() {
        try check(element, items, file: file, path: path + "/\(index)", problems: &problems)
      }
    }
  }

  struct SchemaError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
  }
}

extension JSONSchemaValidator {
  /// Every problem of a schema file as a schema: keywords outside the supported subset,
  /// `$ref`s that do not resolve, a missing or other `$schema` than draft 2020-12 at the top.
  mutating func lint(_ file: String) throws -> [String] {
    let root = try schema(file)
    var problems: [String] = []
    if root["$schema"]?.string != "https://json-schema.org/draft/2020-12/schema" {
      problems.append("\(file): $schema is not draft 2020-12")
    }
    try lint(root, file: file, path: "", problems: &problems)
    return problems
  }

  private mutating func lint(_ schema: JSONValue, file: String, path: String, problems: inout [String]) throws {
    if case .bool = schema { return }
    guard case .object(let rules) = schema else {
      problems.append("\(file)\(path): not a schema")
      return
    }
    for keyword in rules.keys.sorted() where !Self.keywords.contains(keyword) && !Self.annotations.contains(keyword) {
      problems.append("\(file)\(path): unsupported keyword \(keyword)")
    }
    if let reference = rules["$ref"]?.string {
      do { _ = try resolve(reference, from: file) } catch { problems.append("\(file)\(path): \(error)") }
    }
    for keyword in ["properties", "$defs"] {
      if case .object(let members) = rules[keyword] {
        for (name, member) in members.sorted(by: { $0.key < $1.key }) {
          try lint(member, file: file, path: "\(path)/\(keyword)/\(name)", problems: &problems)
        }
      }
    }
    for keyword in ["items", "additionalProperties"] {
      if let member = rules[keyword] { try lint(member, file: file, path: "\(path)/\(keyword)", problems: &problems) }
    }
  }
}

extension CLI {
  /// The schema file (Docs/schemas) of a superpipectl command's document: `mock create`, `serve`,
  /// `status` and `destroy` share one.
  static func schemaFile(for command: String) -> String {
    if command.hasPrefix("mock "), command != "mock inject" { return "superpipectl-mock.schema.json" }
    let name = command.replacingOccurrences(of: " ", with: "-").replacingOccurrences(of: "_", with: "")
    return "superpipectl-\(name).schema.json"
  }

  /// Expects `stdout` to be one JSON document that conforms to Docs/schemas/`schema`.
  static func expectConforms(
    _ stdout: String, to schema: String, _ context: String = "", sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    let document = try JSONValue.parse(stdout)
    var validator = JSONSchemaValidator()
    let problems = try validator.validate(document, against: schema)
    #expect(
      problems.isEmpty, "\(context) does not conform to \(schema):\n\(problems.joined(separator: "\n"))\n\(stdout)",
      sourceLocation: sourceLocation)
  }
}
