// Translation.swift - the AFU's resource-handle translation, for the data path (spec §5.4).

extension DriverState {
  func translate(contextID ctxid: UInt32, handle: UInt32, virtualLBA: UInt64) -> MockTranslation {
    // Context must be active in the table (detached / errored contexts have ctx_cap 0).
    guard adapterState == .normal, let serial = table[ctxid], let ctx = contexts[serial], ctx.state == .normal else {
      return .afuError(0x21)
    }
    guard Int(handle) < configuration.maxRHTPerContext else { return .afuError(0x03) }
    guard let entry = ctx.handle(Int(handle)) else { return .afuError(0x05) }
    switch entry.kind {
    case .physical(let lunID, let mask, let lun):
      return .mapped(MockPhysicalExtent(lun: lun, lba: virtualLBA, contiguousBlocks: UInt64.max - virtualLBA,
                                        permissions: entry.permissions, portMask: mask, lunID: lunID,
                                        isPhysicalHandle: true))
    case .virtual(let chunks):
      let chunkIndex = virtualLBA >> Limits.chunkShift
      guard chunkIndex < UInt64(chunks.count) else { return .afuError(0x13) }
      guard let record = records[entry.lun], let lun = record.deviceLUN else { return .afuError(0x20) }
      let mask = record.portMask & UInt8(truncatingIfNeeded: (1 << min(max(configuration.portCount, 0), 8)) - 1)
      guard mask != 0 else { return .afuError(0x20) }
      let port = mask.trailingZeroBitCount
      let offset = virtualLBA & (Limits.chunkSize - 1)
      // LXT permission bits are always both set (0x30), so the RHT nibble decides.
      return .mapped(MockPhysicalExtent(lun: lun, lba: (chunks[Int(chunkIndex)] << Limits.chunkShift) | offset,
                                        contiguousBlocks: Limits.chunkSize - offset,
                                        permissions: entry.permissions, portMask: mask,
                                        lunID: record.lunIDs[port] ?? 0, isPhysicalHandle: false))
    }
  }
}
