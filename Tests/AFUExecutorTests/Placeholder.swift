import Testing

@Test("the AFU executor test target builds") func afuExecutorTargetBuilds() { #expect(Bool(true)) }
