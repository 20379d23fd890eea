/**
 * lua-cjson (OpenResty's fork, or Debian's lua-cjson 2.1), for what /gray/status does with the
 * release key: a private instance from new(), so its settings leave the conf's other users of
 * cjson alone. Called with a dot.
 */
/** @noSelf */
interface CjsonModule {
  /** A separate instance with its own settings. */
  new: () => CjsonModule;
  /** Raises on text that is not JSON (lenient in places: raw control characters in strings, `1.`). */
  decode: (text: string) => unknown;
  /** Raises on what JSON cannot hold (NaN, excessive depth); escapes control characters. */
  encode: (value: unknown) => string;
  decode_max_depth: (depth: number) => void;
  encode_max_depth: (depth: number) => void;
  /** false: hex, leading zeros, inf and nan are refused. */
  decode_invalid_numbers: (allowed: boolean) => void;
  /** OpenResty's fork only: decoded arrays keep a metatable, so an empty one encodes as [] (else {}). */
  decode_array_with_array_mt?: (enabled: boolean) => void;
}
