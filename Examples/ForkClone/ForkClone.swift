// Fork and clone: a parent process writes to a virtual LUN and starts a child; the child attaches
// its own context, clones the parent's virtual LUNs into it (DK_CXLFLASH_VLUN_CLONE), reads the
// parent's data and writes its own, which the parent then reads: the clone shares the chunks.
//
// A context belongs to the process that attached it: in a child after fork() every operation of
// the inherited `Context` fails with `.wrongProcess`. The driver lets only a child of the context's
// owner clone it. This example starts the child with fork + exec (Foundation's `Process`), since a
// multithreaded Swift program must not run Swift code between fork() and exec().
//
//   swift run example-fork-clone            (on a mock adapter of its own; the child reaches it
//                                            through SUPERPIPE_MOCK)
//   swift run example-fork-clone /dev/sdX   (on hardware: a LUN in superpipe mode)

import ExampleSupport
import Foundation
import Superpipe

@main
struct ForkCloneExample {
  static let blocks = 32

  static func main() {
    runExample {
      let arguments = Array(CommandLine.arguments.dropFirst())
      if arguments.first == "child" {
        // example-fork-clone child <disk> <parent token> <handle>
        guard arguments.count == 4, let token = UInt64(arguments[2].dropFirst(2), radix: 16),
          let handle = UInt64(arguments[3])
        else { throw ExampleFailure("usage: child <disk> <0xTOKEN> <handle>") }
        try child(disk: arguments[1], parent: ContextToken(rawValue: token), handle: ResourceHandleID(rawValue: handle))
        return
      }
      let lun = try ExampleLUN(arguments: arguments)
      try parent(lun: lun)
      try lun.checkNoLeaks()
      print("ok")
    }
  }

  static func parent(lun: ExampleLUN) throws {
    let context = try Context(lun: lun.path)  // DK_CXLFLASH_ATTACH
    let virtualLUN = try context.openVirtualLUN(blocks: 65536)  // DK_CXLFLASH_USER_VIRTUAL
    let blockSize = virtualLUN.blockSize
    let buffer = AlignedBuffer(count: blocks * blockSize)
    BlockPattern.fill(buffer.bytes, lba: 0, blockSize: blockSize, generation: 1)
    try virtualLUN.write(at: 0, from: buffer.readOnly)
    print("parent \(getpid()): context \(context.token), virtual LUN \(virtualLUN.handle), wrote LBAs 0..<\(blocks)")

    // fork + exec of this program as the child (stdout flushed first: the child inherits it).
    fflush(nil)
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    child.arguments = ["child", lun.path, "\(context.token)", "\(virtualLUN.handle)"]
    child.environment = lun.childEnvironment
    try child.run()
    child.waitUntilExit()
    guard child.terminationStatus == 0 else { throw ExampleFailure("the child exited with \(child.terminationStatus)") }

    // The child's writes are in the parent's virtual LUN: the clone shared its chunks.
    try virtualLUN.read(at: UInt64(blocks), into: buffer.bytes)
    if let problem = BlockPattern.verify(buffer.readOnly, lba: UInt64(blocks), blockSize: blockSize, generation: 2) {
      throw ExampleFailure("the child's blocks: \(problem)")
    }
    print("parent: reads the child's LBAs \(blocks)..<\(2 * blocks): verified")

    try virtualLUN.release()  // DK_CXLFLASH_RELEASE
    try context.detach()  // DK_CXLFLASH_DETACH
    print("parent: released and detached")
  }

  static func child(disk: String, parent: ContextToken, handle: ResourceHandleID) throws {
    // The child's own context on the same LUN, then the parent's virtual LUNs cloned into it, with
    // the same handle numbers; adopting one checks it with DK_CXLFLASH_VERIFY.
    let context = try Context(lun: disk)
    try context.cloneVirtualLUNs(from: parent)
    let virtualLUN = try context.adoptVirtualLUN(handle)
    let blockSize = virtualLUN.blockSize
    print("child \(getpid()): context \(context.token) cloned virtual LUN \(handle) of \(parent)")

    let buffer = AlignedBuffer(count: blocks * blockSize)
    try virtualLUN.read(at: 0, into: buffer.bytes)
    if let problem = BlockPattern.verify(buffer.readOnly, lba: 0, blockSize: blockSize, generation: 1) {
      throw ExampleFailure("the parent's blocks: \(problem)")
    }
    print("child: reads the parent's LBAs 0..<\(blocks): verified")
    BlockPattern.fill(buffer.bytes, lba: UInt64(blocks), blockSize: blockSize, generation: 2)
    try virtualLUN.write(at: UInt64(blocks), from: buffer.readOnly)
    print("child: wrote LBAs \(blocks)..<\(2 * blocks)")

    try virtualLUN.release()
    try context.detach()
  }
}
