// This module's locks: the package's counted, ThreadSanitizer-visible lock (Superpipe's
// Internals/Instrumentation.swift). Shadows Synchronization.Mutex in every file of the module.

@_spi(Instrumentation) import Superpipe

typealias Mutex<Value: ~Copyable> = InstrumentedMutex<Value, PackageLocks>
