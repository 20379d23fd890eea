/**
 * Which address a request is routed by. Pure: shared by the router (Lua) and the CLI (JavaScript).
 */
import { type Cidr, anyCidrContains, formatAddress, forwardedAddress, parseAddress } from "./ip.ts";

/**
 * remote_addr, unless the peer is a trusted proxy: then X-Real-IP, else X-Forwarded-For, each
 * read as nginx's realip module reads it (set_real_ip_from per trusted CIDR, real_ip_recursive on).
 * A header that yields nothing usable is ignored, never an error.
 */
export function clientIp(
  remoteAddr: string,
  realIp: string | undefined,
  forwardedFor: string | undefined,
  trusted: Cidr[],
): string {
  if (trusted.length === 0) return remoteAddr;
  const peer = parseAddress(remoteAddr);
  if (peer === undefined || !anyCidrContains(trusted, peer)) return remoteAddr;
  let addr = realIp !== undefined ? forwardedAddress(peer, realIp, trusted) : undefined;
  if (addr === undefined && forwardedFor !== undefined) addr = forwardedAddress(peer, forwardedFor, trusted);
  return addr === undefined ? remoteAddr : formatAddress(addr);
}
