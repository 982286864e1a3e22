/** A URL with any user:password part replaced, safe to log or print in errors. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1[redacted]@');
}
