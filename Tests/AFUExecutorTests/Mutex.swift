// This module's locks: the package's counted, ThreadSanitizer-visible lock (Superpipe's
// Internals/Instrumentation.swift). Shadows Synchronization.Mutex in every file of the module.

import Superpipe

typealias Mutex<Value: ~Copyable> = InstrumentedMutex<Value, PackageLocks>
