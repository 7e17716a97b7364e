// Which URLs a call's status callbacks may go to: http or https, and for a URL chosen per call
// (`POST /v1/calls`), a host in STATUS_CALLBACK_ALLOWED_HOSTS. An allow-list, so a Control API
// key cannot make the service post call data to any server it likes.

/** Whether `host` (lower case, no port) is one of `allowed`; `*.example.com` matches any subdomain, not example.com itself. */
export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  for (const entry of allowed) {
    if (entry.startsWith('*.')) {
      if (host.endsWith(entry.slice(1)) && host.length > entry.length - 1) return true;
    } else if (host === entry) {
      return true;
    }
  }
  return false;
}

/** Why a per-call status callback URL is refused, or null when it may be used. */
export function callbackUrlProblem(raw: string, allowed: readonly string[]): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'status_callback_url is not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'status_callback_url must use http or https';
  if (allowed.length === 0) return 'this service takes no per-call status_callback_url (STATUS_CALLBACK_ALLOWED_HOSTS is empty)';
  // URL lower-cases host names; a trailing dot names the same host.
  const host = url.hostname.replace(/\.$/, '');
  if (!hostAllowed(host, allowed)) return `the host ${host} is not in STATUS_CALLBACK_ALLOWED_HOSTS`;
  return null;
}
