// How a device raises its interrupt. In a VM this writes the device's irqfd (KVM injects the
// GSI without a VM exit); in unit tests it is a counter.
export interface InterruptLine {
  trigger(): void;
}
