// validate.js: the server's rules for release fields, checked before anything is sent
// (docs/api.md 7.6). Each function returns an error message, or '' when the value is fine.

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export function version(v) {
  if (!v) return 'a version is required';
  if (v.length > 24) return 'at most 24 characters';
  const m = SEMVER.exec(v);
  if (!m) return 'a strict semantic version: MAJOR.MINOR.PATCH[-PRE][+BUILD], no leading v or zeros';
  for (const [i, name] of [[1, 'MAJOR'], [2, 'MINOR'], [3, 'PATCH']]) {
    if (Number(m[i]) > 255) return `${name} must be at most 255 (one byte in the package header)`;
  }
  return '';
}

export function ecuId(v) {
  if (!v) return 'an ECU id is required';
  if (/^ECU_(\d{3})$/.test(v) && v !== 'ECU_000') return '';
  if (v === 'VMG' || v === 'BROADCAST') return '';
  if (/^ZGW[1-9]$/.test(v)) return '';
  if (/^0[xX][0-9a-fA-F]{1,4}$/.test(v)) return '';
  if (/^\d{1,5}$/.test(v) && Number(v) <= 0xffff) return '';
  return 'ECU_001..ECU_999, VMG, BROADCAST, ZGW1..ZGW9 or a number up to 0xFFFF';
}

export function text(v, name, max, required = true) {
  if (!v && required) return `${name} is required`;
  if (v && [...v].length > max) return `at most ${max} characters`;
  return '';
}

export function hardwareId(v) {
  if (!v) return 'a hardware id is required';
  if ([...v].length > 64) return 'at most 64 characters';
  return '';
}

export function hex(v) {
  const c = v.replace(/[\s:]/g, '');
  if (!c) return 'a UDS request is required';
  if (!/^[0-9a-fA-F]+$/.test(c)) return 'hex digits only (spaces are allowed)';
  if (c.length % 2) return 'an even number of hex digits';
  if (c.length > 8190) return 'at most 4095 bytes';
  return '';
}

// compare two semantic versions' MAJOR.MINOR.PATCH (enough for sorting a select)
export function cmpVersion(a, b) {
  const pa = String(a).split(/[.+-]/).slice(0, 3).map(Number), pb = String(b).split(/[.+-]/).slice(0, 3).map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] || 0) !== (pb[i] || 0)) return (pa[i] || 0) - (pb[i] || 0);
  return 0;
}
