// The memory-mode choice of the invoke and register forms: the modes this daemon's OpenAPI
// document lists, after an empty choice that leaves the mode to the default.

export function ModeSelect({
  name,
  empty,
  modes,
  value,
  onChange,
}: {
  name: string;
  /** Label of the empty choice (the default the daemon applies). */
  empty: string;
  modes: string[] | undefined;
  value?: string;
  onChange?: (mode: string) => void;
}) {
  return (
    <select
      name={name}
      value={value}
      onChange={onChange && ((e) => onChange(e.currentTarget.value))}
    >
      <option value="">{empty}</option>
      {(modes ?? []).map((m) => (
        <option key={m} value={m}>
          {m}
        </option>
      ))}
    </select>
  );
}
