// Reads {"check": [uri...], "compress": [uri...]} on stdin; writes digital-link.js's verdicts as JSON.
'use strict';
const { DigitalLink, Utils } = require('digital-link.js');

// keys with a check digit (digital-link.js src/checkDigit.js); for the others its isValid()
// always answers false (validateIdentifierCheckDigit returns false when a key has no check digit)
const CHECKED = new Set(['01', '00', '414', '8003', '8018', '253', '402', '255']);

function verdict(uri) {
  try {
    const dl = DigitalLink(uri);
    const grammar = dl.getValidationTrace().success;
    const key = Object.keys(dl.getIdentifier())[0];
    const valid = grammar && (CHECKED.has(key) ? dl.isCheckDigitValid() : true);
    return { uri, valid, grammar, isValid: dl.isValid(), key };
  } catch (e) {
    return { uri, valid: false, error: String(e.message || e) };
  }
}

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  const out = {
    check: (req.check || []).map(verdict),
    compress: (req.compress || []).map((uri) => {
      const compressed = Utils.compressWebUri(uri);
      return { uri, compressed, decompressed: Utils.decompressWebUri(compressed) };
    }),
  };
  process.stdout.write(JSON.stringify(out));
});
