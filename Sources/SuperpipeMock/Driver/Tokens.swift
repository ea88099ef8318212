// Tokens.swift - deterministic randomness and context tokens (spec §3.2).
//
// token = (random non-zero high 32 bits) << 32 | ctxid. The high half stands in for the kernel
// pointer bits the real driver uses as a salt; it is kept across RECOVER_AFU, the low half follows
// the process element.

/// SplitMix64: small, fast, seedable; good enough for salts and generated WWIDs.
struct SplitMix64: RandomNumberGenerator {
  private var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

enum Token {
  /// Combines a salt and a process element into a token.
  static func make(salt: UInt32, processElement: UInt32) -> UInt64 {
    (UInt64(salt) << 32) | UInt64(processElement)
  }
  /// The ctxid (low 32 bits) of a token.
  static func ctxid(_ token: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: token) }
  /// The salt (high 32 bits) of a token.
  static func salt(_ token: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: token >> 32) }
}

extension DriverState {
  /// A fresh non-zero salt not used by any live context (so tokens stay unique even across the
  /// error list, where a context keeps its old ctxid until recovered).
  mutating func mintSalt() -> UInt32 {
    while true {
      let salt = UInt32(truncatingIfNeeded: rng.next() >> 16)
      if salt != 0, !contexts.values.contains(where: { Token.salt($0.token) == salt }) { return salt }
    }
  }
}
