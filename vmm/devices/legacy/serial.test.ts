import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFaasnapError } from '../../../common/errors.js';
import { ConsoleLog } from '../console-log.js';
import { Serial, SERIAL_PORT_BASE, SERIAL_PORT_LEN } from './serial.js';
import { Bus } from '../../bus.js';

class CountingLine {
  count = 0;
  trigger(): void {
    this.count++;
  }
}

/** A UART whose output goes to a ConsoleLog the test reads. */
function make(opts: { inputCapacity?: number } = {}): {
  dev: Serial;
  irq: CountingLine;
  log: ConsoleLog;
} {
  const irq = new CountingLine();
  const log = new ConsoleLog();
  return { dev: new Serial({ interrupt: irq, output: log, ...opts }), irq, log };
}

const rd = (d: Serial, off: number): number => {
  const b = new Uint8Array(1);
  d.read(off, b);
  return b[0]!;
};
const wr = (d: Serial, off: number, v: number): void => d.write(off, Uint8Array.of(v));
const puts = (d: Serial, s: string): void => {
  for (const b of Buffer.from(s)) wr(d, 0, b);
};

const THR = 0,
  IER = 1,
  IIR = 2,
  FCR = 2,
  LCR = 3,
  MCR = 4,
  LSR = 5,
  MSR = 6,
  SCR = 7;

test('reset state: no interrupt, transmitter empty, host modem lines up, 9600 baud', () => {
  const { dev } = make();
  assert.equal(rd(dev, IIR), 0x01);
  assert.equal(rd(dev, LSR), 0x60);
  assert.equal(rd(dev, IER), 0x00);
  assert.equal(rd(dev, MSR), 0xb0);
  assert.equal(dev.divisor, 12);
});

test('DLAB switches offsets 0/1 to the divisor latch', () => {
  const { dev, log } = make();
  wr(dev, LCR, 0x83);
  wr(dev, 0, 0x01);
  wr(dev, 1, 0x02);
  assert.equal(rd(dev, 0), 0x01);
  assert.equal(rd(dev, 1), 0x02);
  assert.equal(dev.divisor, 0x0201);
  assert.equal(log.text(), '', 'a DLL write is not output');
  wr(dev, LCR, 0x03);
  assert.equal(rd(dev, LCR), 0x03);
  assert.equal(rd(dev, IER), 0x00, 'IER was not touched by the DLM write');
  puts(dev, 'A');
  assert.equal(log.text(), 'A');
  assert.equal(dev.divisor, 0x0201);
});

test('IER keeps only its four defined bits; scratch register holds a byte', () => {
  const { dev } = make();
  wr(dev, IER, 0xff);
  assert.equal(rd(dev, IER), 0x0f);
  wr(dev, SCR, 0xa5);
  assert.equal(rd(dev, SCR), 0xa5);
  wr(dev, SCR, 0x5a);
  assert.equal(rd(dev, SCR), 0x5a);
});

test('LSR: THRE/TEMT always set, DR follows queued input', () => {
  const { dev } = make();
  assert.equal(dev.enqueueInput('hi'), 2);
  assert.equal(rd(dev, LSR), 0x61);
  assert.equal(rd(dev, THR), 'h'.charCodeAt(0));
  assert.equal(rd(dev, LSR), 0x61);
  assert.equal(rd(dev, THR), 'i'.charCodeAt(0));
  assert.equal(rd(dev, LSR), 0x60);
  assert.equal(dev.pendingInput, 0);
});

test('input queue is bounded and reports what fit', () => {
  const { dev } = make({ inputCapacity: 8 });
  assert.equal(dev.enqueueInput(new Uint8Array(10).fill(7)), 8);
  assert.equal(dev.enqueueInput('x'), 0);
  assert.equal(dev.pendingInput, 8);
});

test('FIFO enable shows in IIR; clearing the RX FIFO drops unread input', () => {
  const { dev } = make();
  wr(dev, FCR, 0x01);
  assert.equal(rd(dev, IIR), 0xc1);
  dev.enqueueInput('abc');
  wr(dev, FCR, 0x03);
  assert.equal(dev.pendingInput, 0);
  assert.equal(rd(dev, LSR) & 0x01, 0);
  wr(dev, FCR, 0x00);
  assert.equal(rd(dev, IIR), 0x01);
});

test('THR-empty interrupt: raised when enabled, acknowledged by IIR, re-raised by a THR write', () => {
  const { dev, irq } = make();
  wr(dev, IER, 0x02);
  assert.equal(irq.count, 1);
  assert.equal(rd(dev, IIR), 0x02);
  assert.equal(rd(dev, IIR), 0x01, 'reading IIR cleared THRE');
  assert.equal(irq.count, 1);
  puts(dev, 'x');
  assert.equal(irq.count, 2);
  puts(dev, 'yz'); // line already high: no new edge
  assert.equal(irq.count, 2);
  assert.equal(rd(dev, IIR), 0x02);
  // Linux's startup check: disable, re-enable, expect THRE again.
  wr(dev, IER, 0x00);
  assert.equal(rd(dev, IIR), 0x01);
  wr(dev, IER, 0x02);
  assert.equal(rd(dev, IIR), 0x02);
  assert.equal(irq.count, 3);
});

test('RX interrupt follows IER and queued input', () => {
  const { dev, irq } = make();
  dev.enqueueInput('a');
  assert.equal(irq.count, 0, 'masked');
  assert.equal(rd(dev, IIR), 0x01);
  wr(dev, IER, 0x01);
  assert.equal(irq.count, 1);
  assert.equal(rd(dev, IIR), 0x04);
  assert.equal(rd(dev, THR), 0x61);
  assert.equal(rd(dev, IIR), 0x01);
  dev.enqueueInput('b');
  assert.equal(irq.count, 2);
});

test('IIR reports sources in 16550 priority order', () => {
  const { dev } = make({ inputCapacity: 1 });
  wr(dev, MCR, 0x10); // loopback (host lines drop: DCTS, DDSR, DDCD) to produce an overrun
  puts(dev, 'a');
  puts(dev, 'b'); // queue full: overrun
  wr(dev, MCR, 0x12); // RTS -> CTS
  wr(dev, IER, 0x0f);
  assert.equal(rd(dev, IIR), 0x06, 'line status first');
  assert.equal(rd(dev, LSR), 0x63, 'DR | OE | THRE | TEMT');
  assert.equal(rd(dev, LSR), 0x61, 'OE clears on read');
  assert.equal(rd(dev, IIR), 0x04, 'then received data');
  assert.equal(rd(dev, THR), 0x61);
  assert.equal(rd(dev, IIR), 0x02, 'then THR empty');
  assert.equal(rd(dev, IIR), 0x00, 'then modem status');
  assert.equal(rd(dev, MSR), 0x10 | 0x0b, 'CTS with DCTS | DDSR | DDCD');
  assert.equal(rd(dev, IIR), 0x01, 'nothing left');
  assert.equal(dev.overruns, 1);
});

test('loopback wires MCR to MSR and THR to RBR, bypassing the console', () => {
  const { dev, log } = make();
  // What Linux's autoconfig does: LOOP | RTS | OUT2 must read back CTS | DCD.
  wr(dev, MCR, 0x1a);
  assert.equal(rd(dev, MSR) & 0xf0, 0x90);
  wr(dev, MCR, 0x15); // LOOP | DTR | OUT1
  const msr = rd(dev, MSR);
  assert.equal(msr & 0xf0, 0x60, 'DSR | RI');
  assert.equal(msr & 0x0f, 0x0b, 'DCTS | DDSR | DDCD');
  wr(dev, MCR, 0x11); // OUT1 off: RI trailing edge
  assert.equal(rd(dev, MSR), 0x20 | 0x04, 'DSR, TERI only');
  puts(dev, 'Q');
  assert.equal(log.text(), '');
  assert.equal(rd(dev, LSR) & 0x01, 1);
  assert.equal(rd(dev, THR), 'Q'.charCodeAt(0));
  wr(dev, MCR, 0x00);
  assert.equal(rd(dev, MSR), 0xb0 | 0x01 | 0x08, 'host lines back; DSR did not change');
  puts(dev, 'R');
  assert.equal(log.text(), 'R');
});

test('save/restore keeps registers and pending input, not the log', () => {
  const { dev } = make();
  wr(dev, LCR, 0x80);
  wr(dev, 0, 0x03);
  wr(dev, LCR, 0x03);
  wr(dev, IER, 0x05);
  wr(dev, MCR, 0x0b);
  wr(dev, SCR, 0x42);
  wr(dev, FCR, 0xc1);
  puts(dev, 'logged');
  dev.enqueueInput('pending');
  const state = JSON.parse(JSON.stringify(dev.save())) as unknown;
  const irq = new CountingLine();
  const copyLog = new ConsoleLog();
  const copy = Serial.restore({ interrupt: irq, output: copyLog }, state);
  assert.equal(copy.divisor, 3);
  assert.equal(rd(copy, LCR), 0x03);
  assert.equal(rd(copy, IER), 0x05);
  assert.equal(rd(copy, MCR), 0x0b);
  assert.equal(rd(copy, SCR), 0x42);
  assert.equal(rd(copy, IIR), 0xc4);
  assert.equal(copyLog.text(), '');
  let s = '';
  while (rd(copy, LSR) & 1) s += String.fromCharCode(rd(copy, THR));
  assert.equal(s, 'pending');
  assert.equal(irq.count, 0, 'restore raises nothing by itself');
  assert.deepEqual(copy.save(), { ...dev.save(), rx: '', irqLevel: false });
});

test('restore rejects invalid state', () => {
  const { dev } = make();
  const good = dev.save();
  const bad: unknown[] = [
    { ...good, ier: 0x10 },
    { ...good, dll: 256 },
    { ...good, extra: 1 },
    { ...good, rx: 'not base64!' },
    { ...good, rx: Buffer.alloc(16).toString('base64') },
    null,
  ];
  for (const state of bad) {
    assert.throws(
      () =>
        Serial.restore(
          { interrupt: new CountingLine(), output: new ConsoleLog(), inputCapacity: 8 },
          state,
        ),
      (e: unknown) => isFaasnapError(e, 'STATE_INVALID'),
      JSON.stringify(state),
    );
  }
});

test('works behind the bus at 0x3f8', () => {
  const { dev, log } = make();
  const bus = new Bus();
  bus.insert(dev, SERIAL_PORT_BASE, SERIAL_PORT_LEN);
  for (const b of Buffer.from('ok')) bus.write(SERIAL_PORT_BASE, Uint8Array.of(b));
  const lsr = new Uint8Array(1);
  bus.read(SERIAL_PORT_BASE + 5, lsr);
  assert.equal(lsr[0], 0x60);
  assert.equal(log.text(), 'ok');
});
