/** Real certificates for the mTLS tests, made with the openssl CLI in a temp directory. */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Cert {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}

export interface Pki {
  dir: string;
  ca: string;
  caPath: string;
  /** Issues a cert signed by this CA with the given SANs (`URI:spiffe://…`, `DNS:x`). `days: -1` = expired. */
  issue(name: string, sans: string[], opts?: { days?: number }): Cert;
  /**
   * An intermediate CA signed by this one, as a Pki of its own (same directory): its `ca` is the
   * intermediate's certificate, and `chain` the intermediate to send after a leaf.
   */
  intermediate(name: string): Pki & { chain: string };
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function createPki(
  caName = 'meshwork-test-ca',
  dir = mkdtempSync(join(tmpdir(), 'meshwork-pki-')),
  signedBy?: { caPath: string; caKey: string },
): Pki {
  const caKey = join(dir, `${caName}.key`);
  const caPath = join(dir, `${caName}.pem`);
  if (signedBy) {
    const csr = join(dir, `${caName}.csr`);
    const ext = join(dir, `${caName}.ext`);
    writeFileSync(ext, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
    openssl(['req', ...EC, '-keyout', caKey, '-out', csr, '-subj', `/CN=${caName}`], dir);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        signedBy.caPath,
        '-CAkey',
        signedBy.caKey,
        '-set_serial',
        String(Date.now()),
        '-out',
        caPath,
        '-days',
        '2',
        '-extfile',
        ext,
      ],
      dir,
    );
  } else
    openssl(
      ['req', '-x509', ...EC, '-keyout', caKey, '-out', caPath, '-subj', `/CN=${caName}`, '-days', '2'],
      dir,
    );
  let serial = 1;
  return {
    intermediate(name) {
      const p = createPki(name, dir, { caPath, caKey });
      return { ...p, chain: p.ca, cleanup() {} };
    },
    dir,
    caPath,
    ca: readFileSync(caPath, 'utf8'),
    issue(name, sans, opts = {}) {
      const keyPath = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const certPath = join(dir, `${name}.pem`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`);
      openssl(['req', ...EC, '-keyout', keyPath, '-out', csr, '-subj', `/CN=${name}`], dir);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          csr,
          '-CA',
          caPath,
          '-CAkey',
          caKey,
          '-set_serial',
          String(serial++ + Date.now()),
          '-out',
          certPath,
          '-days',
          String(opts.days ?? 1),
          '-extfile',
          ext,
        ],
        dir,
      );
      return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), certPath, keyPath };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const TRAVELS_ID = 'spiffe://cluster.local/ns/default/sa/travels';
export const GATEWAY_ID = 'spiffe://cluster.local/ns/default/sa/gateway';
export const OTHER_ID = 'spiffe://cluster.local/ns/default/sa/intruder';

export interface PublicSite {
  /** The root CA (what a client trusts, as a system store would). */
  root: string;
  /** The server's chain: leaf, then the intermediate that signed it. */
  chain: string;
  key: string;
  cleanup(): void;
}

/**
 * A certificate as a public site has one: root CA -> intermediate CA -> leaf with DNS SANs
 * (serverAuth only), the server sending leaf + intermediate.
 */
export function createPublicSite(dnsNames: string[]): PublicSite {
  const dir = mkdtempSync(join(tmpdir(), 'meshwork-public-'));
  const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
  openssl(
    [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      'root.key',
      '-out',
      'root.pem',
      '-subj',
      '/CN=Test Public Root CA',
      '-days',
      '2',
    ],
    dir,
  );
  write('ca.ext', 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl(
    ['req', ...EC, '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Test Public Issuing CA'],
    dir,
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'int.csr',
      '-CA',
      'root.pem',
      '-CAkey',
      'root.key',
      '-set_serial',
      '2',
      '-out',
      'int.pem',
      '-days',
      '2',
      '-extfile',
      'ca.ext',
    ],
    dir,
  );
  write(
    'leaf.ext',
    `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(',')}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
  );
  openssl(['req', ...EC, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${dnsNames[0]}`], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'leaf.csr',
      '-CA',
      'int.pem',
      '-CAkey',
      'int.key',
      '-set_serial',
      '3',
      '-out',
      'leaf.pem',
      '-days',
      '1',
      '-extfile',
      'leaf.ext',
    ],
    dir,
  );
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    root: read('root.pem'),
    chain: read('leaf.pem') + read('int.pem'),
    key: read('leaf.key'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The SPIFFE bundle (JWKS) of a CA, as SPIRE's bundle endpoint serves it, with a JWT key beside. */
export function spiffeBundleOf(...pems: string[]): string {
  return JSON.stringify({
    keys: [
      ...pems.map((pem) => ({
        use: 'x509-svid',
        kty: 'EC',
        crv: 'P-256',
        x5c: [new X509Certificate(pem).raw.toString('base64')],
      })),
      { use: 'jwt-svid', kty: 'EC', kid: 'k1', crv: 'P-256', x: 'AAAA', y: 'AAAA' },
    ],
    spiffe_refresh_hint: 300,
    spiffe_sequence: 1,
  });
}
