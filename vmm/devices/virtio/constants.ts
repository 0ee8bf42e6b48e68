// Virtio 1.x numbers shared by the transport, the virtqueue and the device models (virtio spec
// v1.2: §2.1 status, §2.7 split virtqueues, §4.2 virtio-mmio, §5.2 block, §6 reserved features).

// Device status bits (§2.1), written by the driver into the Status register.
export const STATUS_ACKNOWLEDGE = 0x01;
export const STATUS_DRIVER = 0x02;
export const STATUS_DRIVER_OK = 0x04;
export const STATUS_FEATURES_OK = 0x08;
export const STATUS_DEVICE_NEEDS_RESET = 0x40;
export const STATUS_FAILED = 0x80;

// Reserved (transport/ring) feature bits (§6), as bit numbers.
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_IN_ORDER = 35;
export const VIRTIO_F_RING_RESET = 40;

/** A feature bit number as a feature mask. */
export function featureBit(bit: number): bigint {
  return 1n << BigInt(bit);
}

/**
 * Features every device on our transport offers, because the shared queue code implements them:
 * VERSION_1 (the modern mmio layout requires it) and indirect descriptors (fewer ring slots per
 * request). EVENT_IDX is deliberately not offered: honouring the driver's suppression index needs
 * a full store-load barrier between publishing used.idx and reading avail's used_event, which
 * plain JS stores into non-shared memory cannot express; without it an interrupt could be lost.
 */
export const TRANSPORT_FEATURES =
  featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_RING_F_INDIRECT_DESC);

// Split-ring descriptor flags (§2.7.5).
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;

// Ring flags (§2.7.6, §2.7.8).
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

// Split-ring layout (§2.7): element sizes and the alignment each part must have.
export const VIRTQ_DESC_SIZE = 16;
export const VIRTQ_USED_ELEM_SIZE = 8;
export const VIRTQ_DESC_ALIGN = 16;
export const VIRTQ_AVAIL_ALIGN = 2;
export const VIRTQ_USED_ALIGN = 4;
/** Largest queue size the spec allows (§2.7: Queue Size ≤ 32768, a power of two). */
export const VIRTQ_MAX_SIZE = 32768;

// virtio-mmio (§4.2.2): identification values.
export const MMIO_MAGIC_VALUE = 0x74726976; // "virt", little endian
export const MMIO_VERSION = 2; // modern (non-legacy) register layout
export const MMIO_VENDOR_ID = 0x50414e53; // "SNAP", little endian: any value is allowed
/** Size of one device's MMIO window: registers (0x100) + config space, one page. */
export const MMIO_WINDOW_SIZE = 0x1000;

// virtio-mmio register offsets (§4.2.2).
export const MMIO_MAGIC = 0x000;
export const MMIO_VERSION_REG = 0x004;
export const MMIO_DEVICE_ID = 0x008;
export const MMIO_VENDOR_ID_REG = 0x00c;
export const MMIO_DEVICE_FEATURES = 0x010;
export const MMIO_DEVICE_FEATURES_SEL = 0x014;
export const MMIO_DRIVER_FEATURES = 0x020;
export const MMIO_DRIVER_FEATURES_SEL = 0x024;
export const MMIO_QUEUE_SEL = 0x030;
export const MMIO_QUEUE_NUM_MAX = 0x034;
export const MMIO_QUEUE_NUM = 0x038;
export const MMIO_QUEUE_READY = 0x044;
export const MMIO_QUEUE_NOTIFY = 0x050;
export const MMIO_INTERRUPT_STATUS = 0x060;
export const MMIO_INTERRUPT_ACK = 0x064;
export const MMIO_STATUS = 0x070;
export const MMIO_QUEUE_DESC_LOW = 0x080;
export const MMIO_QUEUE_DESC_HIGH = 0x084;
export const MMIO_QUEUE_DRIVER_LOW = 0x090;
export const MMIO_QUEUE_DRIVER_HIGH = 0x094;
export const MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
export const MMIO_SHM_SEL = 0x0ac;
export const MMIO_SHM_LEN_LOW = 0x0b0;
export const MMIO_SHM_LEN_HIGH = 0x0b4;
export const MMIO_SHM_BASE_LOW = 0x0b8;
export const MMIO_SHM_BASE_HIGH = 0x0bc;
export const MMIO_QUEUE_RESET = 0x0c0;
export const MMIO_CONFIG_GENERATION = 0x0fc;
export const MMIO_CONFIG = 0x100;

// InterruptStatus bits (§4.2.2).
export const MMIO_INT_VRING = 0x1; // used buffer notification
export const MMIO_INT_CONFIG = 0x2; // configuration change notification

// Device ids (§5).
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_RNG = 4;
export const VIRTIO_ID_BALLOON = 5;
export const VIRTIO_ID_VSOCK = 19;

// virtio-blk (§5.2): feature bits.
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
export const VIRTIO_BLK_F_MQ = 12;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

// virtio-blk request types and status values.
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

/** virtio-blk counts capacity and request offsets in 512-byte sectors, whatever the disk. */
export const VIRTIO_BLK_SECTOR_SIZE = 512;
/** Length of the request header (type u32, reserved u32, sector u64). */
export const VIRTIO_BLK_HEADER_SIZE = 16;
/** GET_ID answers with at most this many bytes (NUL-padded, not necessarily terminated). */
export const VIRTIO_BLK_ID_BYTES = 20;

// virtio-console (§5.3): feature bits (none is offered: one port, no size, no emergency write)
// and the queues of port 0.
export const VIRTIO_CONSOLE_F_SIZE = 0;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1;
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 2;
export const VIRTIO_CONSOLE_RX_QUEUE = 0; // receiveq: host → guest
export const VIRTIO_CONSOLE_TX_QUEUE = 1; // transmitq: guest → host
/** struct virtio_console_config: cols u16, rows u16, max_nr_ports u32, emerg_wr u32. */
export const VIRTIO_CONSOLE_CONFIG_SIZE = 12;
