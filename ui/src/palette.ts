// One colour per series label (memory modes mostly): given in order of first appearance, so
// every chart of the page draws a mode in the same colour.

const COLOURS = [
  '#2563eb',
  '#dc2626',
  '#16a34a',
  '#d97706',
  '#7c3aed',
  '#0891b2',
  '#db2777',
  '#65a30d',
  '#4b5563',
];
const given = new Map<string, string>();

export function colourOf(label: string): string {
  let c = given.get(label);
  if (!c) {
    c = COLOURS[given.size % COLOURS.length]!;
    given.set(label, c);
  }
  return c;
}
